"""The reference scan: a plain loop over time, differentiated by autograd. The oracle of the tests."""

from __future__ import annotations

import torch
from torch import Tensor


def scan_reference(a: Tensor, b: Tensor, reset: Tensor | None, h0: Tensor | None) -> Tensor:
    """h_t = a_t * (h0 if reset_t else h_{t-1}) + b_t, h_{-1} = h0 (zeros if None).

    a: (Ba, La, D) with Ba in {1, B}, La in {1, L}; b: (B, L, D); reset: (B, L) bool or None;
    h0: (Bh, D) with Bh in {1, B}, or None. Returns h (B, L, D).
    """
    B, L, D = b.shape
    init = torch.zeros(B, D, dtype=b.dtype, device=b.device) if h0 is None else h0.expand(B, D)  # (B, D)
    # unbind rather than index b[:, t]: the backward of one index is a full-size zero tensor per step
    bs, as_ = b.unbind(1), a.unbind(1) if a.shape[1] > 1 else [a[:, 0]] * L
    h, out = init, []
    for t in range(L):
        prev = h if reset is None else torch.where(reset[:, t, None], init, h)
        h = as_[t] * prev + bs[t]
        out.append(h)
    return torch.stack(out, 1) if out else b.new_zeros(B, 0, D)
