"""World-model speed and memory per backbone: `python -m benchmarks.world_models [--quick]`.

At preset `small`, batch 16, side by side in one run:
- train step (forward + backward + Adam, median ms) at L = 64, 256, 1024 with 64-dim vector
  observations (the sequence model is what is measured), and with 64x64 images at L = 64;
- peak memory of each train step (CUDA: max allocated; CPU: growth of the peak resident set of a
  fresh process per configuration, from after a warm-up step on a short batch to after the steps);
- imagination time per step (no grad, horizon 16) after observing contexts of 64, 256, 1024 steps;
- parameter counts.
Prints a table and writes a new record to benchmarks/results/world-models-<device>/ (benchmarks.record)
with the targets checked:
s5 train step at L=1024 >= 3x faster than rssm; s5 and s4 imagination after 1024 steps within 1.2x
of after 64 while the transformer's grows; s5 peak memory at L=1024 <= the transformer's.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tyro
from tqdm import tqdm

from benchmarks import record

BATCH = 16
VECTOR = 64
HORIZON = 16


@dataclass
class Args:
    quick: bool = False
    """fewer repeats, lengths 64 and 1024 only"""
    backbones: tuple[str, ...] = ("rssm", "transformer", "s4", "s5", "mamba")
    device: str = "auto"
    """auto (cuda if available), cpu or cuda"""
    preset: str = "small"
    threads: int = 1
    """torch CPU threads per measurement (1 keeps timings stable on a shared machine)"""
    repeats: int = 0
    """timed repeats per measurement (0 = 5, or 2 with --quick)"""
    results: Path = record.RESULTS
    """folder of the result records (a new file per run under world-models-<device>/)"""
    side_by_side_only: bool = False
    """run only the rssm/s5 side-by-side train steps (float32 and bf16 autocast)"""
    worker: str = ""
    """internal: run one measurement described by this JSON in this process and print its result"""


# --------------------------------------------------------------------------- one measurement
def _setup(job: dict):
    import gymnasium as gym
    import numpy as np
    import torch

    import world_models as wm

    torch.manual_seed(0)
    torch.set_num_threads(job["threads"])
    spaces = {"vector": gym.spaces.Box(-np.inf, np.inf, (VECTOR,), np.float32)}
    if job.get("image"):
        spaces = {"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)}
    act = gym.spaces.Discrete(4)
    window = max([1025] + [c + HORIZON + 1 for c in job.get("contexts", [])])  # attention sees the whole context
    config = wm.WorldModelConfig.preset(job["preset"], context=window)
    model = wm.make(job["backbone"], gym.spaces.Dict(spaces), act, config, device=job["device"])
    return torch, model


def _batch(torch, model, L: int, device: str, image: bool) -> dict:
    B = BATCH
    batch = {
        "action": torch.nn.functional.one_hot(torch.randint(0, model.act_dim, (B, L)), model.act_dim).float(),
        "reward": torch.randn(B, L),
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
    }
    batch["is_first"][:, 0] = True
    if image:
        batch["image"] = torch.randint(0, 256, (B, L, 64, 64, 3), dtype=torch.uint8)
    else:
        batch["vector"] = torch.randn(B, L, VECTOR)
    return {k: v.to(device) for k, v in batch.items()}


def _sync(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_step(job: dict) -> dict:
    torch, model = _setup(job)
    device = job["device"]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = _batch(torch, model, job["length"], device, job.get("image", False))

    def step(batch):
        loss, _ = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # Warm up on a short batch first: compiles the scan kernels and makes the optimiser state, so that
    # the peak below is the step's own memory, not the JIT compiler's.
    step(_batch(torch, model, 8, device, job.get("image", False)))
    base = _maxrss_mb()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    step(batch)  # warm-up at full length
    times = []
    for _ in range(job["repeats"]):
        _sync(torch, device)
        t = time.perf_counter()
        step(batch)
        _sync(torch, device)
        times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _maxrss_mb()) - base
    return {"ms": 1e3 * statistics.median(times), "times_ms": [1e3 * t for t in times], "peak_mb": peak, "params": model.num_params()}


def side_by_side(job: dict) -> dict:
    """Train steps of several backbones (job["pair"]) at one length, alternating in one process round by round,
    so that their ratio sees the same machine load (the per-backbone jobs above run minutes apart)."""
    steps = {}
    for name in job["pair"]:
        torch, model = _setup(dict(job, backbone=name))
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        batch = _batch(torch, model, job["length"], job["device"], False)

        def step(model=model, opt=opt, batch=batch):
            # bf16: the agents' precision="bf16" (autocast of the forward pass, as DreamerV3 trains)
            with torch.autocast(job["device"], dtype=torch.bfloat16, enabled=job.get("precision") == "bf16"):
                loss, _ = model.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()  # warm-up
        steps[name] = step
    times = {name: [] for name in steps}
    for _ in range(job["repeats"]):
        for name, step in steps.items():
            _sync(torch, job["device"])
            t = time.perf_counter()
            step()
            _sync(torch, job["device"])
            times[name].append(1e3 * (time.perf_counter() - t))
    return {
        "length": job["length"],
        "ms": {n: statistics.median(v) for n, v in times.items()},
        "times_ms": times,
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def imagination(job: dict) -> dict:
    """Imagination ms per step after each context, measured in interleaved rounds (one imagination from
    every context per round, medians over rounds), so that load changes on a shared machine hit every
    context alike: timed one context after the other, a ratio of contexts measures the load's drift."""
    torch, model = _setup(job)
    device = job["device"]
    out = {"params": model.num_params(), "ms_per_step": {}}
    model.eval()

    def policy(feat):
        return torch.nn.functional.one_hot(torch.randint(0, model.act_dim, (feat.shape[0],), device=device), model.act_dim).float()

    with torch.no_grad():
        starts = {}
        for context in job["contexts"]:
            batch = _batch(torch, model, context, device, False)
            _, _, _, starts[context] = model.observe({"vector": batch["vector"]}, batch["action"], batch["is_first"])
            model.imagine(starts[context], policy, 2)  # warm-up
        times = {context: [] for context in starts}
        for _ in range(max(job["repeats"], 9)):
            for context, start in starts.items():
                _sync(torch, device)
                t = time.perf_counter()
                model.imagine(start, policy, HORIZON)
                _sync(torch, device)
                times[context].append((time.perf_counter() - t) / HORIZON)
    out["ms_per_step"] = {str(c): 1e3 * statistics.median(v) for c, v in times.items()}
    return out


def _run_worker(job: dict) -> dict:
    """Runs `job` in a fresh Python process (a clean peak-memory reading) and returns its result."""
    cmd = [sys.executable, "-m", "benchmarks.world_models", "--worker", json.dumps(job)]
    threads = str(job["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent.parent, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark job {job} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- report
def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-")
    return "cpu"


def _targets(results: dict, lengths: list[int], contexts: list[int]) -> dict:
    train, imag, checks = results["train_vector"], results["imagination"], {}
    L, lo, hi = str(max(lengths)), str(min(contexts)), str(max(contexts))
    if "side_by_side" in results:  # alternating in one process: the ratio the target is about
        ms = results["side_by_side"]["ms"]
        ratio = ms["rssm"] / ms["s5"]
        checks[f"s5 train step at L={L} >= 3x faster than rssm (side by side)"] = {"value": round(ratio, 2), "pass": ratio >= 3}
        if "side_by_side_bf16" in results:  # not the target (float32 is the default), the agents' bf16 option
            ms = results["side_by_side_bf16"]["ms"]
            checks[f"(bf16 autocast) s5 train step at L={L} >= 3x faster than rssm (side by side)"] = {
                "value": round(ms["rssm"] / ms["s5"], 2),
                "pass": ms["rssm"] / ms["s5"] >= 3,
            }
    elif "s5" in train and "rssm" in train:
        ratio = train["rssm"][L]["ms"] / train["s5"][L]["ms"]
        checks[f"s5 train step at L={L} >= 3x faster than rssm"] = {"value": round(ratio, 2), "pass": ratio >= 3}
    for b in ("s5", "s4"):
        if b in imag:
            ratio = imag[b]["ms_per_step"][hi] / imag[b]["ms_per_step"][lo]
            checks[f"{b} imagination step after {hi} within 1.2x of after {lo}"] = {"value": round(ratio, 2), "pass": ratio <= 1.2}
    if "transformer" in imag:
        ratio = imag["transformer"]["ms_per_step"][hi] / imag["transformer"]["ms_per_step"][lo]
        checks[f"transformer imagination step grows from {lo} to {hi}"] = {"value": round(ratio, 2), "pass": ratio > 1.2}
    if "s5" in train and "transformer" in train:
        s5, tr = train["s5"][L]["peak_mb"], train["transformer"][L]["peak_mb"]
        checks[f"s5 peak memory at L={L} <= transformer's"] = {"value": f"{s5:.0f} MB vs {tr:.0f} MB", "pass": s5 <= tr}
    return checks


def table(results: dict, lengths: list[int], contexts: list[int]) -> str:
    head = (
        ["backbone", "params"]
        + [f"train L={L} ms" for L in lengths]
        + ["image L=64 ms"]
        + [f"peak L={L} MB" for L in lengths]
        + [f"imagine@{c} ms/step" for c in contexts]
    )
    rows = []
    for b in results["backbones"]:
        tv, ti, im = results["train_vector"][b], results["train_image"][b], results["imagination"][b]
        rows.append(
            [b, f"{tv[str(lengths[0])]['params']:,}"]
            + [f"{tv[str(L)]['ms']:.1f}" for L in lengths]
            + [f"{ti['ms']:.1f}"]
            + [f"{tv[str(L)]['peak_mb']:.0f}" for L in lengths]
            + [f"{im['ms_per_step'][str(c)]:.2f}" for c in contexts]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(args: Args) -> dict:
    if args.worker:
        job = json.loads(args.worker)
        run = {"train": train_step, "imagine": imagination, "side_by_side": side_by_side}[job["kind"]]
        print(json.dumps(run(job)))
        return {}
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    repeats = args.repeats or (2 if args.quick else 5)
    lengths = [64, 1024] if args.quick else [64, 256, 1024]
    contexts = [64, 1024] if args.quick else [64, 256, 1024]
    base = {"preset": args.preset, "device": device, "repeats": repeats, "threads": args.threads}
    jobs = [("train_vector", b, L, dict(base, kind="train", backbone=b, length=L)) for L in lengths for b in args.backbones]
    jobs += [("train_image", b, 64, dict(base, kind="train", backbone=b, length=64, image=True)) for b in args.backbones]
    jobs += [("imagination", b, None, dict(base, kind="imagine", backbone=b, contexts=contexts)) for b in args.backbones]
    pair = [b for b in ("rssm", "s5") if b in args.backbones]
    if len(pair) == 2:
        for precision in ("32", "bf16"):
            jobs.append(
                (
                    f"side_by_side{'_bf16' if precision == 'bf16' else ''}",
                    None,
                    max(lengths),
                    dict(base, kind="side_by_side", pair=pair, length=max(lengths), precision=precision),
                )
            )
    results: dict = {
        "backbones": list(args.backbones),
        "train_image": {},
        "imagination": {},
        "train_vector": {} if args.side_by_side_only else {b: {} for b in args.backbones},
    }
    if args.side_by_side_only:
        jobs = [j for j in jobs if j[0].startswith("side_by_side")]
    started = record.start()  # the record keeps the load averages at start and end (timings are shared-CPU)
    print(f"load average at start: {list(started.load)}")
    for group, b, L, job in tqdm(jobs, desc="world-model benchmark"):
        res = _run_worker(job)
        if group == "train_vector":
            results["train_vector"][b][str(L)] = res
        elif group.startswith("side_by_side"):
            results[group] = res
        else:
            results[group][b] = res
    results["targets"] = _targets(results, lengths, contexts)
    results["setup"] = {
        "device": device,
        "device_name": _device_name(device),
        "preset": args.preset,
        "batch": BATCH,
        "vector_dim": VECTOR,
        "horizon": HORIZON,
        "repeats": repeats,
        "quick": args.quick,
        "torch_threads": args.threads,
        "side_by_side_only": args.side_by_side_only,
    }
    if not args.side_by_side_only:
        print(table(results, lengths, contexts))
    print(f"load average at end: {[round(x, 2) for x in os.getloadavg()]}")
    for name, check in results["targets"].items():
        print(f"{'PASS' if check['pass'] else 'FAIL'}  {name}: {check['value']}")
    path = record.write_result(f"world-models-{_device_name(device)}", results, started=started, device=device, results=args.results)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
