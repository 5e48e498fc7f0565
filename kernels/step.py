"""`ssm_step`: one recurrent step of a diagonal SSM layer (state update, reset, readout) for imagination.

    h_next = a * (h0 if reset else h) + bu
    MIMO (S5):  h (B, N),    y[b, k] = Re(sum_n C[k, n] h_next[b, n])    + D[k] u[b, k]
    SISO (S4D): h (B, H, N), y[b, k] = Re(sum_n C[k, n] h_next[b, k, n]) + D[k] u[b, k]

On CUDA, when no gradient is needed, one fused Triton launch does it all; elsewhere (and under
autograd) a few PyTorch ops, differentiable in everything.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kernels.backends import FLOAT_DTYPES, available, backend_module, compute_dtype, describe
from kernels.check import fused_allowed
from kernels.torch_scan import ssm_step as ssm_step_torch


def ssm_step(
    h: Tensor,
    a: Tensor,
    bu: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    u: Tensor | None = None,
    reset: Tensor | None = None,
    h0: Tensor | None = None,
    check: bool = True,
) -> tuple[Tensor, Tensor]:
    """One step of an SSM layer. MIMO when h is (B, N), SISO when h is (B, H, N) (see the module docstring).

    a: (N,) | (B, N) for MIMO, (H, N) | (B, H, N) for SISO; bu like h; C (H, N);
    D (H,) and u (B, H) optional (both or neither); reset (B,) bool; h0 like h or like one row of it
    (zeros if None). Returns (y (B, H) real, h_next like h in the state dtype).

    check=False skips the validation and the casts to the state dtype: for the SSM layers' recurrent
    steps, whose shapes are fixed when the layer is built and whose h, a, bu, h0 and C already share
    the state dtype (one acting step costs a few microseconds; the checks cost as much as the step).
    """
    if check:
        dtype, _ = _check_step(h, a, bu, C, D, u, reset, h0)
        h, a, bu = h.to(dtype), a.to(dtype), bu.to(dtype)
        h0 = None if h0 is None else h0.to(dtype)
    if h.device.type == "cuda" and _fusable(h, a, bu, C, D, u, h0):
        return backend_module("triton").ssm_step(h, a, bu, C, D, u, reset, h0)
    return ssm_step_torch(h, a, bu, C, D, u, reset, h0)


def _fusable(h, a, bu, C, D, u, h0) -> bool:
    """Whether the fused Triton step can run: triton is here, D u is real, no gradient is needed, and the
    fused kernels agreed with torch on this device (checked on first use)."""
    tensors = [x for x in (h, a, bu, C, D, u, h0) if x is not None]
    return (
        available("triton")
        and (D is None or not (D.is_complex() or u.is_complex()))
        and not (torch.is_grad_enabled() and any(x.requires_grad for x in tensors))
        and fused_allowed(h.device)
    )


def _check_step(h, a, bu, C, D, u, reset, h0) -> tuple[torch.dtype, int]:
    """Raises ValueError naming given and expected shapes; returns (state dtype, H)."""
    if not isinstance(h, Tensor) or h.dim() not in (2, 3):
        raise ValueError(f"ssm_step: h must be (B, N) (MIMO) or (B, H, N) (SISO), got {describe(h)}")
    B, N = h.shape[0], h.shape[-1]
    if not isinstance(C, Tensor) or C.dim() != 2 or C.shape[1] != N or (h.dim() == 3 and C.shape[0] != h.shape[1]):
        want = f"(H, N) = (H, {N})" if h.dim() == 2 else f"(H, N) = {tuple(h.shape[1:])}"
        raise ValueError(f"ssm_step: C must be {want} for h of shape {tuple(h.shape)}, got {describe(C)}")
    H = C.shape[0]
    row = tuple(h.shape[1:])
    checks = [
        ("a", a, (row, tuple(h.shape))),
        ("bu", bu, (tuple(h.shape),)),
        ("h0", h0, (row, tuple(h.shape))),
        ("D", D, ((H,),)),
        ("u", u, ((B, H),)),
        ("reset", reset, ((B,),)),
    ]
    for name, x, shapes in checks:
        if x is None:
            continue
        if not isinstance(x, Tensor) or tuple(x.shape) not in shapes:
            raise ValueError(
                f"ssm_step: {name} must have shape {' or '.join(map(str, shapes))} for h of shape "
                f"{tuple(h.shape)} and C of shape {tuple(C.shape)}, got {describe(x)}"
            )
        if x.device != h.device:
            raise ValueError(f"ssm_step: {name} is on {x.device} but h is on {h.device}; expected one device")
    if (D is None) != (u is None):
        raise ValueError(f"ssm_step: D and u go together (y += D * u), got D={describe(D)}, u={describe(u)}")
    if reset is not None and reset.dtype != torch.bool:
        raise ValueError(f"ssm_step: reset must be a bool tensor of shape {(B,)}, got {describe(reset)}")
    floats = [("h", h), ("a", a), ("bu", bu), ("C", C)] + [(n, x) for n, x in (("h0", h0), ("D", D), ("u", u)) if x is not None]
    for name, x in floats:
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"ssm_step: {name} has dtype {x.dtype}; expected one of {', '.join(map(str, FLOAT_DTYPES))}")
    return compute_dtype(*(x.dtype for n, x in floats if n in ("h", "a", "bu", "h0"))), H
