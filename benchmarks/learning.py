"""Learning benchmarks: Dreamer with an S5 world model against the RSSM on memory tasks, by wall clock.

    python -m benchmarks.learning                        # every task, s5 and rssm, 60 minutes each (hours)
    python -m benchmarks.learning --minutes 10           # 10 minutes of training per run (resumes where the last call stopped)
    python -m benchmarks.learning --tasks minigrid-s7 --backbones s5

Each run is an ordinary `memwm train` run in runs/bench-<task>-<backbone>-<seed>/ with a
wall-clock budget: calling the script again resumes every run from its checkpoint and adds
`--minutes` more, so a long benchmark can be done in pieces. After each run the script reads the
run's metrics.jsonl and writes benchmarks/results/learning.json: per run the evaluation curve
(env step, mean return, success rate), the minutes trained, the final and best success rate,
and whether it reached the target (success >= 0.9).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from agents.config import TrainConfig
from agents.train import train

RESULTS = Path(__file__).parent / "results"

# The tasks of the issue: pixels, preset small.
TASKS: dict[str, dict] = {
    "minigrid-s7": dict(env="minigrid/memory-s7", preset="small", steps=400_000, eval_every=10_000, eval_episodes=16),
    "distracting-100": dict(env="memory/distracting-100", preset="small", steps=400_000, seq_len=128, eval_every=10_000,
                            eval_episodes=16),
}


@dataclass
class Args:
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    backbones: list[str] = field(default_factory=lambda: ["s5", "rssm"])
    minutes: float = 60.0
    """wall-clock minutes of training to add to each run in this call"""
    seed: int = 0
    runs: str = "runs"
    """folder of the benchmark runs"""
    device: str = "auto"


def curve(run_dir: Path) -> list[dict]:
    """The evaluations of a run, in order: env step, mean return, success rate."""
    points = []
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return points
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "eval/return" in record:
            points.append({"step": record["step"], "return": record["eval/return"], "success": record["eval/success"]})
    return points


def summarise(task: str, backbone: str, run_dir: Path, minutes_total: float) -> dict:
    points = curve(run_dir)
    successes = [p["success"] for p in points]
    return {"task": task, "backbone": backbone, "run": str(run_dir), "minutes": minutes_total, "evals": points,
            "final_success": successes[-1] if successes else None, "best_success": max(successes) if successes else None,
            "solved": bool(successes) and max(successes) >= 0.9}


def main(args: Args) -> dict:
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        raise SystemExit(f"unknown task {unknown[0]!r}; known: {', '.join(TASKS)}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "learning.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for task in args.tasks:
        for backbone in args.backbones:
            key = f"{task}/{backbone}/{args.seed}"
            run_dir = Path(args.runs) / f"bench-{task}-{backbone}-{args.seed}"
            config = TrainConfig(backbone=backbone, seed=args.seed, run=str(run_dir), minutes=args.minutes, device=args.device,
                                 **TASKS[task])
            start = time.time()
            train(config)
            spent = results.get(key, {}).get("minutes", 0.0) + (time.time() - start) / 60
            results[key] = summarise(task, backbone, run_dir, spent)
            path.write_text(json.dumps(results, indent=2))
    print(f"{'task':<18} {'backbone':<10} {'minutes':>8} {'final success':>14} {'best success':>13} {'solved':>7}")
    for r in results.values():
        fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        print(f"{r['task']:<18} {r['backbone']:<10} {r['minutes']:>8.1f} {fmt(r['final_success']):>14} "
              f"{fmt(r['best_success']):>13} {str(r['solved']):>7}")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
