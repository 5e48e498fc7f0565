"""`scan`: the resettable diagonal linear recurrence every SSM backbone runs on, and its dispatch.

    h_t = a_t * h_{t-1} + b_t,   h_{-1} = h0,   a reset at t replaces h_{t-1} by h0 (zeros if None).

Inputs are checked and brought to one normal form here, so a backend sees
    a (Ba, La, D), Ba in {1, B}, La in {1, L}   (a time-invariant `a` is never expanded over time)
    b (B, L, D), reset (B, L) bool or None, h0 (Bh, D), Bh in {1, B}, or None
all contiguous, on one device, in the compute dtype (float32, float64, complex64 or complex128).

A backend other than "reference" is a module with two functions, wrapped in one autograd Function
(kernels/backends.py):
    forward(a, b, reset, h0) -> h (B, L, D)
    backward(a, h, dh, reset, h0) -> (grad_b (B, L, D), grad_a (B, La, D), grad_h0 (B, D))
The backward is the reverse scan
    g_t = dh_t + conj(a_{t+1} * (1 - reset_{t+1})) * g_{t+1},   grad_b = g,
    grad_a_t = g_t * conj(h_{t-1}, or h0 where reset_t or t = 0)   (summed over time when La = 1),
    grad_h0 = sum over t = 0 and the reset steps of g_t * conj(a_t),
which is PyTorch's convention for complex gradients (the conjugate Wirtinger derivative).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kernels.backends import FLOAT_DTYPES, BackendScan, available, backend_module, compute_dtype, describe, normal_form
from kernels.check import fused_allowed, say_once
from kernels.reference import scan_reference

BACKENDS = ("auto", "reference", "torch", "numba", "triton")


def scan(a: Tensor, b: Tensor, reset: Tensor | None = None, h0: Tensor | None = None, backend: str = "auto") -> tuple[Tensor, Tensor]:
    """h_t = a_t * h_{t-1} + b_t over dim 1 of b; a reset at t replaces h_{t-1} by h0.

    a: (B, L, D) | (B, D) | (D,); b: (B, L, D); reset: (B, L) bool; h0: (D,) | (B, D).
    float32/float64/complex64/complex128; float16/bfloat16 inputs give a float32 state.
    backend: "auto" (triton on CUDA, the fastest available CPU path elsewhere), "reference",
    "torch", "numba" (CPU) or "triton" (CUDA, or the CPU under TRITON_INTERPRET=1).
    Returns (h (B, L, D), h_last (B, D)); differentiable in a, b and h0.
    """
    dtype = _check(a, b, reset, h0)
    name = resolve_backend(backend, b.device)
    B, L, D = b.shape
    if L == 0:
        h_last = h0.to(dtype).expand(B, D).clone() if h0 is not None else b.new_zeros(B, D, dtype=dtype)
        return b.new_zeros(B, 0, D, dtype=dtype), h_last
    if name == "reference":
        h = scan_reference(*normal_form(a, b, reset, h0, dtype))
    else:
        try:
            module = backend_module(name)
        except ImportError as e:
            raise ValueError(
                f"scan backend {name!r} is not available here ({e}); available: "
                f"{', '.join(n for n in BACKENDS if n in ('auto', 'reference') or available(n))}"
            ) from e
        h = BackendScan.apply(a, b, h0, reset, dtype, module)
    return h, h[:, -1]


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that `backend` means for tensors on `device` (resolves "auto").

    "auto" on CUDA is triton once the fused kernels have agreed with torch on that device (the first
    call runs the check, see kernels/check.py), torch otherwise.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown scan backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        if not available("triton"):
            say_once(
                "no triton",
                "memwm: triton is not installed: scans on CUDA run on the torch backend, without the fused kernels (pip install triton)",
            )
            return "torch"
        return "triton" if fused_allowed(device) else "torch"  # checked against torch on first use
    if device.type == "cpu" and available("numba"):
        return "numba"
    return "torch"


def _check(a, b, reset, h0) -> torch.dtype:
    """Raises ValueError naming what was given and what was expected; returns the compute dtype."""
    if not isinstance(b, Tensor) or b.dim() != 3:
        raise ValueError(f"scan: b must be a (B, L, D) tensor, got {describe(b)}")
    B, L, D = b.shape
    if not isinstance(a, Tensor) or tuple(a.shape) not in ((B, L, D), (B, D), (D,)):
        raise ValueError(
            f"scan: a must have shape (B, L, D) = {(B, L, D)}, (B, D) = {(B, D)} or (D,) = {(D,)} "
            f"to match b of shape {tuple(b.shape)}, got {describe(a)}"
        )
    if h0 is not None and (not isinstance(h0, Tensor) or tuple(h0.shape) not in ((B, D), (D,))):
        raise ValueError(f"scan: h0 must have shape (B, D) = {(B, D)} or (D,) = {(D,)}, got {describe(h0)}")
    if reset is not None and (not isinstance(reset, Tensor) or tuple(reset.shape) != (B, L) or reset.dtype != torch.bool):
        raise ValueError(f"scan: reset must be a bool tensor of shape (B, L) = {(B, L)}, got {describe(reset)}")
    named = [("a", a), ("b", b)] + ([("h0", h0)] if h0 is not None else [])
    for name, x in named:
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"scan: {name} has dtype {x.dtype}; expected one of {', '.join(str(d) for d in FLOAT_DTYPES)}")
    for name, x in named + ([("reset", reset)] if reset is not None else []):
        if x.device != b.device:
            raise ValueError(f"scan: {name} is on {x.device} but b is on {b.device}; expected all on one device")
    return compute_dtype(*(x.dtype for _, x in named))
