"""The fused Triton kernels checked where they run, against the torch backend, once per device and process.

A kernel that compiles can still compute the wrong thing on a device it was never run on, and a
training run would then learn silently from wrong states. So the first time a process would run
the fused kernels on a device (`scan(backend="auto")` or `ssm_step` there), `fused_allowed` runs
them once on a small random problem beside the torch backend: the scan forward and its gradients
in a, b and h0 (real and complex, time-varying and shared a, with resets and h0) and the fused
step (MIMO and SISO). If an error exceeds TOLERANCE, or a kernel fails to build or run, it says
so in one line with the error size, and `auto` uses the torch backend on that device for the
rest of the process. `self_check(device)` runs the same comparison and returns the figures
(`memwm version --check`).

The problem's shapes cross the kernels' tile boundaries (time and channel blocks) and its random
numbers come from a private generator, so checking never moves the global RNG streams that a run's
reproducibility rests on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import Tensor

from kernels.backends import BackendScan, backend_module

TOLERANCE = 1e-4  # largest |fused - torch| / largest |torch|, per output; float32 rounding stays far below
_verdicts: dict[torch.device, bool] = {}  # device -> the fused kernels agreed with torch there
_said: set[str] = set()  # one-time messages already printed


def say_once(key: str, message: str) -> None:
    if key not in _said:
        _said.add(key)
        print(message, file=sys.stderr)


def fused_allowed(device: torch.device, log: Callable[[str], None] | None = None) -> bool:
    """Whether the fused kernels may run on `device`: checked against torch on first use, then remembered.

    device: a CUDA device (or the CPU when triton runs under TRITON_INTERPRET=1).
    """
    verdict = _verdicts.get(device)
    if verdict is not None:
        return verdict
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return True  # a graph being captured cannot run the check's syncs; the eager first call has checked
    key = _canonical(device)
    if key not in _verdicts:
        report = self_check(key)
        _verdicts[key] = report["ok"]
        if not report["ok"]:
            (log or (lambda m: print(m, file=sys.stderr)))(
                f"memwm: the fused triton kernels disagree with the torch backend on {key} ({report['summary']}); "
                f"using the torch backend there for the rest of this process"
            )
    _verdicts[device] = _verdicts[key]
    return _verdicts[key]


def self_check(device: torch.device | str) -> dict:
    """Run the fused kernels beside the torch backend on `device`; return the figures.

    Returns {"device", "errors": {name: largest relative error}, "failed": the kernel that raised and
    why (or None), "worst": (name, error), "ok": every error <= TOLERANCE and nothing raised,
    "summary": one line}.
    """
    device = torch.device(device)
    errors: dict[str, float] = {}
    failed = None
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
            errors.update(_scan_errors(device))
            errors.update(_step_errors(device))
    except Exception as e:  # a kernel that does not build or run here is a failed check, not a crash
        failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    worst = max(errors.items(), key=lambda kv: kv[1]) if errors else ("none", float("nan"))
    ok = failed is None and all(e <= TOLERANCE for e in errors.values())
    if failed is not None:
        summary = f"a kernel failed: {failed}"
    else:
        summary = f"largest relative error {worst[1]:.1e} in {worst[0]}, tolerance {TOLERANCE:.0e}"
    return {"device": str(device), "errors": errors, "failed": failed, "worst": worst, "ok": ok, "summary": summary}


def _canonical(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _sizes() -> tuple[int, int, int, int, int]:
    """(B, L, D, H, N): L and D cross the scan's time and channel tiles, H and N the step's blocks."""
    from kernels import triton_scan

    block_t, block_d, _ = triton_scan.CONFIG[True]
    block_t, block_d = max(block_t, triton_scan.CONFIG[False][0]), max(block_d, triton_scan.CONFIG[False][1])
    step_blocks = (3, 5) if triton_scan.INTERPRET else (33, 65)  # the fused step's blocks are 32 outputs x 64 states
    return 2, 2 * block_t + 1, block_d + 3, *step_blocks


def _relative(got: Tensor, want: Tensor) -> float:
    scale = want.abs().max().clamp_min(1e-6)
    return float((got - want).abs().max() / scale)


def _scan_errors(device: torch.device) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    B, L, D, _, _ = _sizes()
    errors = {}
    for dtype in (torch.float32, torch.complex64):
        for form in ("varying", "shared"):
            shape = (B, L, D) if form == "varying" else (D,)
            magnitude = 0.5 + 0.45 * torch.rand(shape, generator=g)  # |a| < 1: a state that neither vanishes nor blows up
            a = magnitude if dtype == torch.float32 else torch.polar(magnitude, 3 * torch.rand(shape, generator=g))
            b = torch.randn(B, L, D, dtype=dtype, generator=g)
            h0 = torch.randn(B, D, dtype=dtype, generator=g)
            reset = torch.rand(B, L, generator=g) < 0.1
            weight = torch.randn(B, L, D, dtype=dtype, generator=g)  # a random cotangent
            results = {}
            for backend in ("torch", "triton"):
                leaves = [x.to(device).requires_grad_() for x in (a, b, h0)]
                h = BackendScan.apply(*leaves, reset.to(device), dtype, backend_module(backend))  # as scan runs it
                loss = (h * weight.to(device).conj()).real.sum()
                grads = torch.autograd.grad(loss, leaves)
                results[backend] = [h.detach(), *grads]
            name = f"scan {form} a, {str(dtype).removeprefix('torch.')}"
            for part, want, got in zip(("h", "grad a", "grad b", "grad h0"), results["torch"], results["triton"]):
                errors[f"{name}: {part}"] = _relative(got, want)
    return errors


def _step_errors(device: torch.device) -> dict[str, float]:
    g = torch.Generator().manual_seed(1)
    B, _, _, H, N = _sizes()
    fused, reference = backend_module("triton").ssm_step, backend_module("torch").ssm_step
    errors = {}
    for mode, dtype in (("MIMO", torch.complex64), ("SISO", torch.float32)):
        shape = (B, N) if mode == "MIMO" else (B, H, N)
        h = torch.randn(shape, dtype=dtype, generator=g)
        a = 0.9 * torch.randn(shape[1:], dtype=dtype, generator=g)
        bu = torch.randn(shape, dtype=dtype, generator=g)
        h0 = torch.randn(shape[1:], dtype=dtype, generator=g)
        C = torch.randn(H, N, dtype=dtype, generator=g)
        D, u = torch.randn(H, generator=g), torch.randn(B, H, generator=g)
        reset = torch.rand(B, generator=g) < 0.5
        args = [x.to(device) for x in (h, a, bu, C, D, u, reset, h0)]
        with torch.no_grad():
            want = reference(*args)
            got = fused(*args)
        for part, w, x in zip(("y", "h_next"), want, got):
            errors[f"ssm_step {mode}, {str(dtype).removeprefix('torch.')}: {part}"] = _relative(x, w)
    return errors
