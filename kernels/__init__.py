"""Scan and step operators for diagonal state-space models.

PLACEHOLDER written by the lead to pin the API while the kernels issue is built:
`scan` below is the reference loop only. The kernels helper replaces this file.
"""

from __future__ import annotations

import torch
from torch import Tensor


def scan(a: Tensor, b: Tensor, reset: Tensor | None = None, h0: Tensor | None = None, backend: str = "auto") -> tuple[Tensor, Tensor]:
    """h_t = a_t * h_{t-1} + b_t over dim 1 of b (B, L, D); a reset at t replaces h_{t-1} by h0.

    a: (B, L, D) | (B, D) | (D,); reset: (B, L) bool; h0: (D,) | (B, D). Returns (h (B, L, D), h_last (B, D)).
    """
    B, L, D = b.shape
    h = torch.zeros(B, D, dtype=b.dtype, device=b.device) if h0 is None else h0.expand(B, D).to(b.dtype)
    init = h
    out = []
    for t in range(L):
        at = a[:, t] if a.dim() == 3 else a
        prev = h if reset is None else torch.where(reset[:, t, None], init, h)
        h = at * prev + b[:, t]
        out.append(h)
    hs = torch.stack(out, 1) if out else b.new_zeros(B, 0, D)
    return hs, h
