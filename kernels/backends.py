"""The backends of `scan` and `ssm_step` by name, and the autograd node that runs a backend's scan.

A backend other than "reference" is a module (`backend_module(name)`) with the scan's
    forward(a, b, reset, h0) -> h (B, L, D)
    backward(a, h, dh, reset, h0) -> (grad_b (B, L, D), grad_a (B, La, D), grad_h0 (B, D))
on inputs in the normal form of kernels/scan.py (`normal_form`), and, for "torch" and "triton",
    ssm_step(h, a, bu, C, D, u, reset, h0) -> (y (B, H), h_next like h)
on checked inputs in the state dtype (kernels/step.py). `BackendScan` wraps a module's forward and
backward in one autograd Function. The dispatch (kernels/scan.py, kernels/step.py) and the check of
the fused kernels against torch (kernels/check.py) both run backends through this module.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128)
_MODULES = {"torch": "kernels.torch_scan", "numba": "kernels.numba_scan", "triton": "kernels.triton_scan"}


@functools.cache
def available(name: str) -> bool:
    """Whether backend `name` can run here (its optional dependency imports)."""
    try:
        backend_module(name)
    except ImportError:
        return False
    return True


def backend_module(name: str) -> ModuleType:
    """The module that implements backend `name` ("torch", "numba" or "triton")."""
    return importlib.import_module(_MODULES[name])


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The state dtype for inputs of these dtypes: their promotion, with half precision kept in float32."""
    out = dtypes[0]
    for d in dtypes[1:]:
        out = torch.promote_types(out, d)
    return torch.float32 if out in (torch.float16, torch.bfloat16) else out


def normal_form(a: Tensor, b: Tensor, reset: Tensor | None, h0: Tensor | None, dtype: torch.dtype):
    """(a (Ba, La, D), b (B, L, D), reset (B, L) | None, h0 (Bh, D) | None): contiguous, in `dtype`, never expanded."""
    D = b.shape[2]
    a = a if a.dim() == 3 else a.reshape(-1 if a.dim() == 2 else 1, 1, D)
    h0 = None if h0 is None else h0.reshape(-1, D).to(dtype).contiguous()
    return a.to(dtype).contiguous(), b.to(dtype).contiguous(), None if reset is None else reset.contiguous(), h0


def describe(x) -> str:
    return f"shape {tuple(x.shape)} dtype {x.dtype} on {x.device}" if isinstance(x, Tensor) else type(x).__name__


def _grad_like(g: Tensor, shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """A gradient from a backend ((B, La, D) or (B, D), compute dtype) in the shape and dtype of its input."""
    if len(shape) == 1:
        g = g.sum(0)  # the input was broadcast over the batch
    if g.is_complex() and not dtype.is_complex:
        g = g.real
    return g.reshape(shape).to(dtype)


class BackendScan(torch.autograd.Function):
    """One autograd node around a backend's fused forward and reverse-scan backward."""

    @staticmethod
    def forward(ctx, a, b, h0, reset, dtype, module):
        a_n, b_n, reset, h0_n = normal_form(a, b, reset, h0, dtype)
        h = module.forward(a_n, b_n, reset, h0_n)  # (B, L, D)
        ctx.save_for_backward(a_n, h, reset, h0_n)
        ctx.module = module
        ctx.like = [None if x is None else (x.shape, x.dtype) for x in (a, b, h0)]
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        a_n, h, reset, h0_n = ctx.saved_tensors
        if not any(ctx.needs_input_grad[:3]):
            return (None,) * 6
        grad_b, grad_a, grad_h0 = ctx.module.backward(a_n, h, dh.to(h.dtype).contiguous(), reset, h0_n)
        grads = [
            _grad_like(g, *like) if need else None for g, like, need in zip((grad_a, grad_b, grad_h0), ctx.like, ctx.needs_input_grad[:3])
        ]
        return (*grads, None, None, None)
