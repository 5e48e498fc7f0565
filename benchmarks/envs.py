"""Steps per second of every environment id, one process on one core, random actions.

    python -m benchmarks.envs                  # every id
    python -m benchmarks.envs --only memory/   # ids that start with a prefix

Each id is made with `envs.make(id, seed=0)` and reset; then `rounds` rounds each time `env.step`
on uniformly random actions (resetting when an episode ends, the reset counted in the time) for
`seconds` seconds or `max_steps` steps, whichever comes first. The number reported is the median
over rounds of steps per second, so that another process stealing the core in one round does not
decide it; the memory suite's target is >= 5,000 steps/s. Building the env is not timed (Memory
Maze takes seconds to build a maze; the first reset builds it). Each run writes a new record of the
ids it timed to benchmarks/results/envs/ (benchmarks.record).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import tyro  # noqa: E402

import envs  # noqa: E402
from benchmarks import record  # noqa: E402

TARGET = 5000.0  # steps/s for memory/*


@dataclass
class Args:
    only: str = ""
    """time only the ids that start with this prefix"""
    rounds: int = 3
    """timed rounds per id (the median is reported)"""
    seconds: float = 0.5
    """time budget of one round"""
    max_steps: int = 5000
    """most steps in one round"""
    results: Path = record.RESULTS
    """folder of the result records (a new file per run under envs/)"""


def time_env(env_id: str, rounds: int, seconds: float, max_steps: int) -> dict:
    env = envs.make(env_id, seed=0)
    t0 = time.perf_counter()
    env.reset()
    first_reset = time.perf_counter() - t0
    rates = []
    for _ in range(rounds):
        steps, start = 0, time.perf_counter()
        while steps < max_steps and time.perf_counter() - start < seconds:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            if terminated or truncated:
                env.reset()
        rates.append(steps / (time.perf_counter() - start))
    env.close()
    return {
        "steps_per_s": round(statistics.median(rates), 1),
        "rounds": [round(r, 1) for r in rates],
        "first_reset_s": round(first_reset, 3),
        "description": envs.describe(env_id),
    }


def main(args: Args) -> dict:
    ids = [i for i in envs.ids() if i.startswith(args.only)]
    if not ids:
        raise ValueError(f"no env id starts with {args.only!r}; ids: {', '.join(envs.ids())}")
    started = record.start()
    results = {}
    width = max(map(len, ids))
    print(f"{'id':<{width}}  {'steps/s':>9}  rounds")
    for env_id in ids:
        row = time_env(env_id, args.rounds, args.seconds, args.max_steps)
        results[env_id] = row
        flag = "  (below the 5,000 target)" if env_id.startswith("memory/") and row["steps_per_s"] < TARGET else ""
        print(f"{env_id:<{width}}  {row['steps_per_s']:>9,.0f}  {', '.join(f'{r:,.0f}' for r in row['rounds'])}{flag}")
    memory = [results[i]["steps_per_s"] for i in results if i.startswith("memory/")]
    summary = {
        "method": "median over rounds of env.step steps/s with random actions, one process; resets included, builds not",
        "settings": {"rounds": args.rounds, "seconds": args.seconds, "max_steps": args.max_steps, "only": args.only},
        "memory_suite_min_steps_per_s": min(memory) if memory else None,
        "memory_suite_target_steps_per_s": TARGET,
        "envs": results,
    }
    path = record.write_result("envs", summary, started=started, device="cpu", results=args.results)
    print(f"wrote {path}")
    return summary


if __name__ == "__main__":
    args = tyro.cli(Args)
    try:
        main(args)
    except ValueError as e:  # a bad flag value: one line, not a traceback
        print(f"benchmarks.envs: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
