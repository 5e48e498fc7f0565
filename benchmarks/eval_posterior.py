"""A trained Dreamer played twice on the same held-out episodes: acting from a sample of its posterior
latent, and from the posterior's mode.

    python -m benchmarks.eval_posterior --runs runs/ablate/recall-k8-*-0 runs/ablate/recall-k8-*-1 --episodes 256

Each run's latest checkpoint plays `--episodes` episodes from the first of its evaluation seeds
(never a training episode), once per setting of `memwm eval --posterior` (sample, mode), with the
actor's mode both times: the pair differs only in the latent the world model hands the actor. The
difference says how much of the observation the sampled latent loses: where the posterior holds
the observation exactly, sample and mode give the same latent and the same return. One record
per call (benchmarks.record, `eval-posterior-<task>`), with each run's folder, config, step and both
scores; the report's table gives the paired difference over the runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import tyro

from benchmarks import record

SETTINGS = ("sample", "mode")


@dataclass
class Args:
    runs: list[Path] = field(default_factory=list)
    """run folders of Dreamer runs of one task (each with a config.yaml and a checkpoint)"""
    episodes: int = 256
    """episodes per run and setting, the same ones for both settings"""
    threads: int = 1
    results: Path = record.RESULTS
    """folder of the result records (a new file per call under eval-posterior-<task>/)"""


def score(run: Path, episodes: int) -> dict:
    """Both settings' scalars on the run's latest checkpoint (the same episodes)."""
    from agents.evaluate import evaluate_run

    out = {}
    for setting in SETTINGS:
        found = evaluate_run(run, episodes, device="cpu", posterior=setting)
        out[setting] = {k: v for k, v in found.scalars.items() if k in ("eval/return", "eval/success")}
        out["env"], out["step"], out["checkpoint"] = found.config.env, found.step, found.checkpoint.name
        out["flags"] = _flags(run)
        out["seed"] = found.config.seed
    return out


def _flags(run: Path) -> str:
    """The run's dreamer.act_posterior (what it acted with while training)."""
    from agents.runs import load_run_config

    return load_run_config(run).dreamer.act_posterior


def main(args: Args) -> int:
    record.check_run_folders(args.runs)
    torch.set_num_threads(args.threads)
    started = record.start()
    rows = []
    for run in args.runs:
        row = {"run": str(run), **score(run, args.episodes)}
        rows.append(row)
        sample, mode = row["sample"]["eval/return"], row["mode"]["eval/return"]
        print(f"{run}: step {row['step']}, return sample {sample:.3f}, mode {mode:.3f}", flush=True)
    path = record.write_runs("eval-posterior", rows, started=started, results=args.results, episodes=args.episodes)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(tyro.cli(Args)))
    except ValueError as e:
        print(f"benchmarks.eval_posterior: {e}", file=sys.stderr)
        sys.exit(2)
