"""The pure-PyTorch backend (any device): the scan, a loop over time of in-place `addcmul` into the
output, and the differentiable `ssm_step` that kernels.ssm_step runs off CUDA or under autograd.

Each step is one fused multiply-add over a (B, D) slice written straight into h[:, t], so the loop
allocates nothing and never copies to a time-major layout (the copies cost more than the strided
slices). Resets are rare, so they are applied only at the steps that have one. Shapes are the
normal form of `kernels.scan` (see kernels/scan.py).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _reset_steps(reset: Tensor | None) -> set[int]:
    """The time steps at which some sequence of the batch resets."""
    return set() if reset is None else set(reset.any(0).nonzero().flatten().tolist())


def forward(a: Tensor, b: Tensor, reset: Tensor | None, h0: Tensor | None) -> Tensor:
    """a (Ba, La, D), b (B, L, D), reset (B, L) | None, h0 (Bh, D) | None -> h (B, L, D)."""
    B, L, D = b.shape
    init = b.new_zeros(B, D) if h0 is None else h0.expand(B, D)  # (B, D)
    resets = _reset_steps(reset)
    h = torch.empty_like(b)
    hs, bs = h.unbind(1), b.unbind(1)  # (B, D) views, made at once (cheaper than slicing per step)
    as_ = a.unbind(1) if a.shape[1] > 1 else [a[:, 0]] * L
    prev = init
    for t in range(L):
        if t in resets:
            prev = torch.where(reset[:, t, None], init, prev)
        torch.addcmul(bs[t], as_[t], prev, out=hs[t])
        prev = hs[t]
    return h


def backward(a: Tensor, h: Tensor, dh: Tensor, reset: Tensor | None, h0: Tensor | None):
    """The reverse scan and the gradient products (see kernels/scan.py).

    a (Ba, La, D), h and dh (B, L, D) -> (grad_b (B, L, D), grad_a (B, La, D), grad_h0 (B, D)).
    """
    B, L, D = h.shape
    varying = a.shape[1] > 1
    a_c = a.conj()
    resets = _reset_steps(reset)
    g = torch.empty_like(dh)
    gs, dhs = g.unbind(1), dh.unbind(1)
    acs = a_c.unbind(1) if varying else [a_c[:, 0]] * L
    gs[L - 1].copy_(dhs[L - 1])
    for t in range(L - 2, -1, -1):
        nxt = gs[t + 1]
        if t + 1 in resets:
            nxt = torch.where(reset[:, t + 1, None], 0, nxt)
        torch.addcmul(dhs[t], acs[t + 1], nxt, out=gs[t])

    init = h.new_zeros(B, D) if h0 is None else h0.expand(B, D)  # (B, D)
    # grad_a_t = g_t * conj(h_{t-1}), then corrected at t = 0 and at the resets, where h_{t-1} is h0.
    bs, ts = reset[:, 1:].nonzero().unbind(1) if resets else (None, None)
    if varying:
        grad_a = torch.empty_like(g)
        torch.mul(g[:, 1:], h[:, :-1].conj(), out=grad_a[:, 1:])
        torch.mul(g[:, 0], init.conj(), out=grad_a[:, 0])
        if bs is not None:
            grad_a[bs, ts + 1] = g[bs, ts + 1] * init[bs].conj()
    else:
        grad_a = (g[:, 1:] * h[:, :-1].conj()).sum(1) + g[:, 0] * init.conj()  # (B, D)
        if bs is not None:
            grad_a.index_put_((bs,), g[bs, ts + 1] * (init[bs] - h[bs, ts]).conj(), accumulate=True)
        grad_a = grad_a[:, None]
    # h0 enters at t = 0 and at every reset, each time multiplied by a_t.
    grad_h0 = g[:, 0] * a_c[:, 0]
    if bs is not None:
        grad_h0 = grad_h0.index_put((bs,), g[bs, ts + 1] * a_c[bs if a.shape[0] > 1 else 0, ts + 1 if varying else 0], accumulate=True)
    return g, grad_a, grad_h0


def ssm_step(
    h: Tensor, a: Tensor, bu: Tensor, C: Tensor, D: Tensor | None, u: Tensor | None, reset: Tensor | None, h0: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The PyTorch step of kernels.ssm_step (any device, differentiable), on checked inputs in the state dtype."""
    prev = h
    if reset is not None:
        prev = torch.where(reset.view(-1, *[1] * (h.dim() - 1)), 0 if h0 is None else h0, h)
    h_next = hr = torch.addcmul(bu, a, prev)  # like h
    if C.dtype != hr.dtype:
        rd = torch.promote_types(hr.dtype, C.dtype)
        hr, C = hr.to(rd), C.to(rd)
    y = (hr @ C.T) if h.dim() == 2 else (hr * C).sum(-1)  # (B, H)
    y = y.real if y.is_complex() else y
    if D is not None:
        y = torch.addcmul(y, D, u)
    return y, h_next
