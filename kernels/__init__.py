"""Scan and step operators for diagonal state-space models.

    scan(a, b, reset=None, h0=None, backend="auto") -> (h (B, L, D), h_last (B, D))
    ssm_step(h, a, bu, C, D=None, u=None, reset=None, h0=None, check=True) -> (y (B, H), h_next like h)

Backends: "reference" (the loop the tests trust), "torch" (any device), "numba" (a compiled CPU
loop, used when numba imports), "triton" (fused GPU kernels), "auto" (the fastest one here).
"""

from kernels.scan import BACKENDS, available, resolve_backend, scan
from kernels.step import ssm_step

__all__ = ["BACKENDS", "available", "resolve_backend", "scan", "ssm_step"]
