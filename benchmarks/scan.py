"""Speed of `kernels.scan`: every backend against the reference loop and the elementwise floor.

    python -m benchmarks.scan            # CPU (and CUDA when present)
    python -m benchmarks.scan --quick    # two lengths, fewer rounds

For each shape and backend it times the forward and the forward+backward (gradients in a and b),
and compares them, round by round, with the reference loop and with the elementwise floor: one
`torch.addcmul(b, b, a)` over the same tensors (allocating its output, `a` broadcast as the scan
gets it), the same arithmetic without the sequential dependency. The forward+backward is compared
with three floors (the forward, the reverse scan, the gradient product). Rounds are interleaved
(floor, reference, each backend, then again) and the reported numbers are medians over rounds of
times and of per-round ratios, since the machine is shared and its memory speed varies.
Each run writes a new record per device to benchmarks/results/scan-<device>/ (benchmarks.record).
"""

from __future__ import annotations

import ctypes
import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import torch
import tyro

import kernels
from benchmarks import record


@dataclass
class Args:
    quick: bool = False
    """fewer lengths and rounds"""
    device: str = "auto"
    """cpu, cuda, or auto (every device present)"""
    rounds: int = 0
    """interleaved rounds per shape (0: 7, or 3 with --quick)"""
    threads: int = 1
    """CPU threads for torch and numba. One by default: on a shared 2-core machine a second thread
    is often descheduled and every parallel region waits for it, which times the neighbours"""
    clock: str = "auto"
    """cpu (this process's CPU time, user + sys: time spent descheduled behind the neighbours does not
    count), wall, or auto (cpu on the CPU with one thread, wall otherwise)"""
    warm_heap: bool = True
    """keep freed memory in glibc's heap (mallopt), so that every allocation, the floor's and the scan's,
    reuses warm pages: otherwise each large output is a fresh mmap whose page faults can cost more than
    the arithmetic, depending on whether the kernel finds huge pages, which varies from run to run"""
    backends: tuple[str, ...] = ()
    """backends to time (default: those available on the device, and `auto`)"""
    results: Path = record.RESULTS
    """folder of the result records (a new file per run under scan-<device>/)"""


@dataclass
class Case:
    name: str
    dtype: torch.dtype
    B: int
    L: int
    D: int
    a_kind: str  # "shared" (D,), time-invariant; or "varying" (B, L, D)
    reset_rate: float = 1 / 64
    target: bool = False  # the shape the targets are stated for
    rows: list = field(default_factory=list)


def cases_for(device: str, quick: bool) -> list[Case]:
    if device == "cpu":
        lengths = (16, 1024) if quick else (16, 64, 256, 1024, 4096)
        out = [Case(f"s4/s5 L={L}", torch.complex64, 16, L, 256, "shared", target=L == 1024) for L in lengths]
        out.append(Case("mamba L=1024", torch.float32, 16, 1024, 256, "varying"))
        return out
    lengths = (1024,) if quick else (256, 1024, 4096)
    out = [Case(f"s4/s5 L={L}", torch.complex64, 16, L, 256, "shared") for L in lengths]
    out += [
        Case("gpu target", torch.float32, 8, 4096, 1536, "varying", target=True),
        Case("gpu target, shared a", torch.float32, 8, 4096, 1536, "shared"),
    ]
    return out


def make(case: Case, device: str):
    gen = torch.Generator().manual_seed(0)
    shape = (case.D,) if case.a_kind == "shared" else (case.B, case.L, case.D)
    mag = 0.5 + 0.5 * torch.rand(shape, generator=gen)
    a = torch.polar(mag, 6.28 * torch.rand(shape, generator=gen)) if case.dtype.is_complex else mag
    b = torch.randn(case.B, case.L, case.D, generator=gen, dtype=case.dtype)
    reset = torch.rand(case.B, case.L, generator=gen) < case.reset_rate
    dh = torch.randn(case.B, case.L, case.D, generator=gen, dtype=case.dtype)
    return [x.to(device=device, dtype=case.dtype if x is not reset else torch.bool) for x in (a.to(case.dtype), b, reset, dh)]


def timer(device: str, clock: str = "wall") -> Callable[[Callable[[], object]], float]:
    """Seconds one call of fn takes (synchronising the GPU): wall-clock, or this process's CPU time."""
    now = time.process_time if clock == "cpu" else time.perf_counter

    def run(fn):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = now()
        fn()
        return now() - t0

    return run


def scan_fns(backend: str, a, b, reset, dh):
    def fwd():
        with torch.no_grad():
            kernels.scan(a, b, reset, backend=backend)

    la, lb = a.clone().requires_grad_(), b.clone().requires_grad_()

    def fwd_bwd():
        h, _ = kernels.scan(la, lb, reset, backend=backend)
        torch.autograd.grad(h, [la, lb], dh)

    return fwd, fwd_bwd


def run_case(case: Case, device: str, backends: list[str], rounds: int, clock: str) -> None:
    a, b, reset, dh = make(case, device)
    floor = lambda: torch.addcmul(b, b, a)  # a (D,) broadcasts over (B, L, D) as the scan gets it
    fns = {"floor": (floor, None)}
    for name in ["reference"] + backends:
        fns[name] = scan_fns(name, a, b, reset, dh)
    measure = timer(device, clock)
    for fwd, fb in fns.values():  # warm up (JIT compilation, caches, allocator)
        fwd()
        if fb is not None:
            fb()
    times = {name: {"fwd": [], "fb": []} for name in fns}
    names = list(fns)
    if case.L < 1024:
        rounds *= 3  # short sequences: cheap rounds, and noisier ones
    for k in range(rounds):
        for name in names[k % len(names) :] + names[: k % len(names)]:  # rotate the order every round
            fwd, fb = fns[name]
            times[name]["fwd"].append(measure(fwd))
            if fb is not None:
                times[name]["fb"].append(measure(fb))
    med = statistics.median
    fl, ref = times["floor"]["fwd"], times["reference"]
    case.floor_ms = 1e3 * med(fl)
    for name in ["reference"] + backends:
        t = times[name]
        case.rows.append(
            dict(
                backend=name,
                resolved=kernels.resolve_backend(name, torch.device(device)),
                fwd_ms=1e3 * med(t["fwd"]),
                fwd_bwd_ms=1e3 * med(t["fb"]),
                fwd_vs_reference=med([x / r for x, r in zip(t["fwd"], ref["fwd"])]),
                fwd_bwd_vs_reference=med([x / r for x, r in zip(t["fb"], ref["fb"])]),
                fwd_vs_floor=med([x / f for x, f in zip(t["fwd"], fl)]),
                fwd_bwd_vs_3_floors=med([x / (3 * f) for x, f in zip(t["fb"], fl)]),
            )
        )
    if device == "cuda":
        case.bytes_fwd = (b.numel() * 2 + (a.numel() if a.dim() == 3 else 0)) * b.element_size() + reset.numel()


def copy_bandwidth(device: str) -> float:
    """Device copy bandwidth in bytes/s: median of copies of a 1 GiB tensor (read + write)."""
    src = torch.empty(1 << 28, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    clock = timer(device)
    dst.copy_(src)
    seconds = statistics.median(clock(lambda: dst.copy_(src)) for _ in range(10))
    return 2 * src.numel() * 4 / seconds


def table(cases: list[Case]) -> str:
    head = f"{'shape':<22}{'backend':<16}{'fwd ms':>9}{'/ref':>7}{'/floor':>8}{'f+b ms':>9}{'/ref':>7}{'/3floors':>9}"
    lines = [head, "-" * len(head)]
    for c in cases:
        lines.append(f"{c.name:<22}{'floor (addcmul)':<16}{c.floor_ms:>9.2f}")
        for r in c.rows:
            name = r["backend"] if r["backend"] != "auto" else f"auto={r['resolved']}"
            lines.append(
                f"{'':<22}{name:<16}{r['fwd_ms']:>9.2f}{r['fwd_vs_reference']:>7.2f}{r['fwd_vs_floor']:>8.2f}"
                f"{r['fwd_bwd_ms']:>9.2f}{r['fwd_bwd_vs_reference']:>7.2f}{r['fwd_bwd_vs_3_floors']:>9.2f}"
            )
    return "\n".join(lines)


def targets(cases: list[Case], device: str) -> dict:
    """The targets, checked on this run's numbers."""
    rows = {(c.name, r["backend"]): r for c in cases for r in c.rows}
    if device == "cpu":
        target = next(c for c in cases if c.target)
        auto = rows[(target.name, "auto")]
        never_slower = {
            c.name: rows[(c.name, "auto")]["fwd_bwd_vs_reference"] <= 1 and rows[(c.name, "auto")]["fwd_vs_reference"] <= 1
            for c in cases
            if c.a_kind == "shared"
        }
        return {
            "shape": target.name,
            "backend": auto["resolved"],
            "fwd_within_2x_floor": auto["fwd_vs_floor"] <= 2,
            "fwd_bwd_within_2x_3_floors": auto["fwd_bwd_vs_3_floors"] <= 2,
            "never_slower_than_reference": all(never_slower.values()),
            "per_length": never_slower,
        }
    target = next(c for c in cases if c.target)
    tri = rows.get((target.name, "triton"))
    out = {"copy_bandwidth_GBps": target.copy_bw / 1e9}
    if tri is not None:
        achieved = target.bytes_fwd / (tri["fwd_ms"] / 1e3)
        out.update(
            triton_fwd_GBps=achieved / 1e9,
            triton_fwd_fraction_of_copy=achieved / target.copy_bw,
            triton_faster_than_torch_everywhere=all(
                rows[(c.name, "triton")]["fwd_ms"] < rows[(c.name, "torch")]["fwd_ms"]
                and rows[(c.name, "triton")]["fwd_bwd_ms"] < rows[(c.name, "torch")]["fwd_bwd_ms"]
                for c in cases
            ),
        )
    return out


def warm_heap() -> bool:
    """Tells glibc to serve large allocations from its heap and never give freed memory back."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def main(args: Args) -> None:
    heap = warm_heap() if args.warm_heap else False
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    rounds = args.rounds or (3 if args.quick else 7)
    torch.set_num_threads(args.threads)
    for device in devices:
        backends = list(args.backends) or [
            name
            for name in ("torch", "numba", "triton")
            if kernels.available(name) and (name != "triton" or device == "cuda") and (name != "numba" or device == "cpu")
        ] + ["auto"]
        cases = cases_for(device, args.quick)
        clock = args.clock if args.clock != "auto" else ("cpu" if device == "cpu" and args.threads == 1 else "wall")
        started = record.start()
        for case in cases:
            run_case(case, device, backends, rounds, clock)
        if device == "cuda":
            bw = copy_bandwidth(device)
            for case in cases:
                case.copy_bw = bw
        print(
            f"\nkernels.scan on {device} ({_device_name(device)}, torch threads {torch.get_num_threads()}, {clock} clock, "
            f"warm heap {heap}), "
            f"{rounds} interleaved rounds ({3 * rounds} for L < 1024), resets on 1 step in 64; "
            f"medians of times and of per-round ratios"
        )
        print(table(cases))
        checked = targets(cases, device)
        print("targets:", json.dumps(checked))
        result = dict(
            device=device,
            device_name=_device_name(device),
            numba=_version("numba"),
            triton=_version("triton"),
            threads=torch.get_num_threads(),
            clock=clock,
            warm_heap=heap,
            rounds=rounds,
            quick=args.quick,
            targets=checked,
            cases=[
                dict(
                    name=c.name,
                    dtype=str(c.dtype).replace("torch.", ""),
                    B=c.B,
                    L=c.L,
                    D=c.D,
                    a=c.a_kind,
                    reset_rate=c.reset_rate,
                    floor_ms=c.floor_ms,
                    rows=c.rows,
                )
                for c in cases
            ],
        )
        path = record.write_result(f"scan-{device}", result, started=started, device=device, results=args.results)
        print(f"wrote {path}")


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


if __name__ == "__main__":
    main(tyro.cli(Args))
