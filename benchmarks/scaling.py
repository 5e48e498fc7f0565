"""Data-parallel scaling of `memwm train`: env steps and gradient steps per second by processes x threads.

    python -m benchmarks.scaling                                  # 1 x 1, 1 x 2 and 2 x 1, 3 minutes each
    python -m benchmarks.scaling --configs 1x1 2x1 --minutes 1    # fewer, shorter (a busy machine)

Each configuration is one `memwm train` run as a user starts it (`--nproc-per-node P --threads T`), on the
task with the defaults of `memwm train`, for `--minutes` of wall-clock time, with evaluations (but the final
one) and videos off: what is timed is the run loop itself, acting and learning at the train ratio, checkpoints
included. The loop logs its pace every `log_every` env steps: `perf/env_steps_per_s` (per rank, averaged over
the ranks) and `perf/train_steps_per_s`. The benchmark takes their medians over the log points after the
first that saw an update (before it: the prefill's random actions, no updates; it: warm-up). Env steps/s counts every rank's
steps; a gradient step of P processes trains on P batches, one per rank (replayed steps/s counts them all).

Every call writes a new record to benchmarks/results/scaling/ (benchmarks.record: commit, command, machine,
load) and prints the table `benchmarks.report` makes of it. Time it with nothing else running: the ranks share this machine's cores.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tyro
import yaml

from benchmarks import record, report
from benchmarks.learning import read_jsonl


@dataclass
class Args:
    env: str = "memory/distracting-100"
    backbone: str = "s5"
    configs: list[str] = field(default_factory=lambda: ["1x1", "1x2", "2x1"])
    """processes x torch threads per process, one `memwm train` run each"""
    minutes: float = 3.0
    """wall-clock minutes of each run (`memwm train --minutes`)"""
    flags: str = ""
    """extra `memwm train` flags for every run (e.g. --flags="--batch-size 16"), recorded with the result"""
    results: Path = record.RESULTS
    """folder of the result records (a new file per call under scaling/)"""


def parse_config(text: str) -> tuple[int, int]:
    """'PxT' -> (processes, threads), both >= 1."""
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise ValueError(f"a config is PROCESSESxTHREADS with both >= 1 (e.g. 2x1), got {text!r}")
    return int(m[1]), int(m[2])


def train_command(args: Args, processes: int, threads: int, run_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "agents.cli", "train", "--env", args.env, "--backbone", args.backbone]
    cmd += ["--minutes", f"{args.minutes:g}", "--steps", "100000000", "--threads", str(threads), "--run", str(run_dir)]
    cmd += ["--eval-every", "0", "--eval-episodes", "1", "--video-every", "-1", "--no-tensorboard"]
    if processes > 1:
        cmd += ["--nproc-per-node", str(processes)]
    return cmd + args.flags.split()


def pace(rows: list[dict], processes: int, batch: int, seq_len: int) -> dict:
    """The medians of the run loop's logged pace over the log points after the first that saw an update (that
    one spans the prefill's end and the first updates: warm-up): env steps/s of all ranks, gradient steps/s,
    replayed steps/s of all ranks. `rows`: the run's metrics.jsonl."""
    points = [r for r in rows if "perf/env_steps_per_s" in r]
    first = next((i for i, r in enumerate(points) if r["perf/train_steps_per_s"] > 0), len(points))
    points = points[first + 1 :]
    if not points:
        raise RuntimeError("no logged pace after the first updates and a warm-up point: give the runs more minutes")
    env = statistics.median(r["perf/env_steps_per_s"] for r in points) * processes
    grad = statistics.median(r["perf/train_steps_per_s"] for r in points)
    return {
        "env_steps_per_s": env,
        "grad_steps_per_s": grad,
        "replayed_steps_per_s": grad * processes * batch * seq_len,
        "log_points": len(points),
        "last_step": rows[-1]["step"] if rows else 0,
    }


def run_config(args: Args, processes: int, threads: int) -> dict:
    """One `memwm train` run of `processes` x `threads`, in a temporary folder; its pace."""
    with tempfile.TemporaryDirectory(prefix="memwm-scaling-") as tmp:
        run_dir = Path(tmp) / "run"
        cmd = train_command(args, processes, threads, run_dir)
        proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{processes} x {threads}: `{' '.join(cmd[2:])}` exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        rows = read_jsonl(run_dir / "metrics.jsonl")
    measured = pace(rows, processes, config["batch_size"], config["seq_len"])
    command = "memwm " + " ".join(cmd[3:]).replace(str(run_dir), "RUN")
    return {"processes": processes, "threads": threads, "batch": [config["batch_size"], config["seq_len"]], "command": command, **measured}


def main(args: Args) -> int:
    try:
        configs = [parse_config(c) for c in args.configs]
    except ValueError as e:
        print(f"benchmarks.scaling: error: {e}", file=sys.stderr)
        return 2
    if not configs or args.minutes <= 0:
        print("benchmarks.scaling: error: give at least one config and minutes > 0", file=sys.stderr)
        return 2
    started = record.start()
    rows = []
    for processes, threads in configs:
        print(f"benchmarks.scaling: {processes} process(es) x {threads} thread(s), {args.minutes:g} min ...", file=sys.stderr)
        rows.append(run_config(args, processes, threads))
    settings = {"env": args.env, "backbone": args.backbone, "minutes": args.minutes, "flags": args.flags}
    path = record.write_result("scaling", {"settings": settings, "runs": rows}, started=started, device="cpu", results=args.results)
    print(report.scaling(args.results, ""))
    print(f"benchmarks.scaling: results in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
