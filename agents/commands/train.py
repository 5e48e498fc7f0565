"""`memwm train`: train (or resume) a run, then say where its results are."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import tyro

from agents import checkpoint, distributed
from agents.config import EMBEDDED_RUN, EMBEDDED_RUN_EXTRAS, TrainConfig, load_yaml
from agents.logger import read_evals

# in-context scalars by episode index are many; the final line names the trial's summary instead
_PER_EPISODE = ("icrl/return_ep", "icrl/return_tenth")


def train_command(
    config: Annotated[TrainConfig, tyro.conf.arg(name="")] = TrainConfig(),
    typed: tyro.conf.Suppress[frozenset[str] | None] = None,
) -> None:
    """Train a Dreamer agent; with no arguments, a short memory-task run that fits a laptop CPU.

    typed: the fields whose flags were typed (the CLI reads them from the arguments); they win over task,
    preset and saved values. None: the fields that differ from TrainConfig's defaults.
    """
    from agents import train as training  # looked up at call time, so that tests can stand in for `train`

    if typed is None:
        embedded = dataclasses.replace(config, **{k: getattr(TrainConfig(), k) for k in EMBEDDED_RUN_EXTRAS}) == TrainConfig()
    else:
        embedded = typed <= set(EMBEDDED_RUN_EXTRAS)
    sources = None if typed is None else dict.fromkeys(typed, "flag")
    if embedded:
        config = dataclasses.replace(config, **EMBEDDED_RUN)
        if sources is not None:
            sources.update(dict.fromkeys(EMBEDDED_RUN, "embedded"))
        print(
            f"memwm: the embedded default run: {config.env}, {config.backbone}, preset {config.preset}, "
            f"at most {config.minutes:g} minutes, in {config.run_dir}",
            file=sys.stderr,
        )
    summary = training.train(config, sources)
    # every rank has finished its run before any leaves the process group: a rank that tore it down
    # while another was still leaving could abort that one at exit
    distributed.barrier()
    distributed.shutdown()
    if summary is None or not distributed.is_main():
        return
    report(config.run_dir, summary)


def report(run_dir: Path, summary: dict[str, float]) -> None:
    """The closing lines of a run: the final evaluation, the first and last evaluations, and the files written."""
    saved = load_yaml(run_dir / "config.yaml")
    agent = "ppo, " if saved.get("agent") == "ppo" else ""
    ckpts = checkpoint.checkpoints(run_dir / "checkpoints")
    step = f" at step {int(ckpts[-1].stem.split('-')[1])}" if ckpts else ""
    print(
        f"memwm: finished {saved['env']} ({agent}{saved['backbone']}){step}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if not k.startswith(_PER_EPISODE))
    )
    evals = read_evals(run_dir)
    if len(evals) > 1:
        first, last = evals[0], evals[-1]
        success = f"success {first['success']:.2f} -> {last['success']:.2f}, " if first["success"] is not None else ""
        print(
            f"memwm: eval {success}return {first['return']:.2f} -> {last['return']:.2f} "
            f"(step {first['step']} -> {last['step']}, {saved['eval_episodes']} episodes each)"
        )
    written = [f"metrics in {run_dir / 'metrics.jsonl'}"]
    for folder, what in (("videos", "videos"), ("icrl", "in-context plots")):
        if (run_dir / folder).is_dir() and any((run_dir / folder).iterdir()):
            written.append(f"{what} in {run_dir / folder}")
    tensorboard = f" (tensorboard --logdir {run_dir})" if any(run_dir.glob("events.out.tfevents.*")) else ""
    print(f"memwm: logs in {run_dir}{tensorboard}, " + ", ".join(written))
