"""The one run loop: every learner of memwm (Dreamer, recurrent PPO, compare's offline world-model
training) runs through `Loop`, which owns the run folder.

    resume      -> the newest readable checkpoint: the identity must match, then the agent, the
                   counters and the random states come back
    loop        -> act (gather experience), update (learn), then at their cadences: scalars,
                   a checkpoint, an evaluation on fresh episode seeds, pictures
    end         -> a checkpoint, the final evaluation and pictures; returns the evaluation's scalars

The checkpoint is one dict (agents/checkpoint.py writes it atomically and adds python's, numpy's
and torch's random states): `counters`, `identity`, and the agent's `state_dict()` entries at the
top level. It is written BEFORE every evaluation and picture, and these run with the random
states put back afterwards, so that a failing evaluation costs no training and an evaluation
changes nothing a resumed run would see.

One writer: the loop takes the run folder's lock (agents/runlock.py; rank 0 under torchrun) before
anything in it is written, and removes the temporary files of writes a killed process left.

Exact resume: environments cannot be restored mid-episode, so a resume starts new episodes on the
seeds of its step and the unfinished ones are lost. With `exact_resume` the loop does the same after
every checkpoint of the run that goes on, and all cadences fall at multiples of their interval:
a run stopped at a checkpoint and resumed then equals, bit for bit, the run that never stopped
(the cost: the episodes unfinished at each checkpoint; keep checkpoints far apart next to episodes).

Episode seeds (agents/common.py): the training environments take seeds of the run's training
range, evaluation k takes its own seeds of the evaluation range, so every evaluation meets new
episodes and none of them is a training episode.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from collections.abc import Mapping

import torch

from agents import checkpoint, distributed, runlock
from agents.common import evaluation_seed, preserved_rng, seed_everything
from agents.logger import Logger, RankLogger


@dataclass
class Acted:
    """What one `act` call did: `steps` taken (environment steps, or batches of offline data) and the
    episodes that ended, each as its scalars (`return`, `length`, and `success` on goal tasks)."""

    steps: int
    episodes: list[dict[str, float]] = field(default_factory=list)


class Agent(Protocol):
    """A learner the loop drives.

    `module` holds the weights (checked equal across torchrun's ranks before each checkpoint).
    `act(counters)` gathers experience; `update(counters)` learns from what was gathered and returns
    (updates made, scalars under their stable names or None). `state_dict()` is everything a resume
    needs beyond the counters and the global random states (weights, optimisers, the agent's own
    generators); its entries go to the checkpoint's top level. `begin(counters)` starts acting (a resume
    included): its environments start new episodes on the seeds of that step; `restart(counters)` does
    only that, and the loop calls it after each checkpoint of an exact_resume run.
    """

    module: torch.nn.Module

    def begin(self, counters: Mapping[str, int]) -> None: ...
    def restart(self, counters: Mapping[str, int]) -> None: ...  # new episodes on this step's seeds (exact_resume)
    def act(self, counters: Mapping[str, int]) -> Acted: ...
    def update(self, counters: Mapping[str, int]) -> tuple[int, dict[str, float] | None]: ...
    def evaluate(self, episodes: int, seed: int, step: int, logger) -> dict[str, float]: ...
    def pictures(self, seed: int, step: int, logger) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class LoopConfig:
    """The loop's cadences, counted in `act` steps: `unit` names what one step is."""

    steps: int  # stop at this many steps (a resume continues up to it)
    checkpoint_every: int
    log_every: int
    eval_every: int = 0  # 0: evaluate only at the end
    eval_episodes: int = 1  # episodes (or trials) per evaluation
    video_every: int = -1  # 0: pictures only at the end; -1: never
    minutes: float = 0.0  # also stop after this much wall-clock time (0: no limit)
    seed: int = 0  # the run's seed: its training and evaluation seed ranges
    tensorboard: bool = True
    evaluate_first: bool = True  # with eval_every, evaluate the untrained agent at step 0 (the curve's start)
    desc: str = ""  # the progress bar's label
    leave: bool = True  # keep the progress bar on screen when done
    data_parallel: bool = True  # under torchrun, the ranks train one agent together (False: each its own)
    exact_resume: bool = False  # restart every episode at each checkpoint, as a resume does: resumed = never stopped
    # what `act` counts: environment steps (the learners), or batches of offline data (compare's world models);
    # names the pace scalar (`perf/env_steps_per_s`, `perf/batches_per_s`) and the progress bar's count
    unit: Literal["env_steps", "batches"] = "env_steps"


COUNTERS = ("step", "updates", "episodes", "evaluations")


class Loop:
    """Runs `agent` in `run_dir` with `config`; `identity` is what a resume must match."""

    def __init__(self, agent: Agent, run_dir: str | Path, config: LoopConfig, identity: dict[str, Any]):
        self.agent, self.run_dir, self.config, self.identity = agent, Path(run_dir), config, identity
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.logger = None
        self._saved: dict[str, int] | None = None  # the counters of the last checkpoint
        self.main = distributed.is_main() or not config.data_parallel  # writes the run folder
        # one writer per run folder, taken before anything in it is written (RunLocked names the holder)
        self.lock = runlock.acquire(self.run_dir) if self.main else None
        if self.main:
            _remove_torn_writes(self.run_dir)

    # ------------------------------------------------------------------ resume and save
    def resume(self) -> Path | None:
        """Load the newest readable checkpoint, if any (a different identity is a CheckpointMismatch); its path."""
        try:
            found = checkpoint.load(self.run_dir / "checkpoints", map_location=_device_of(self.agent.module))
            if found is None:
                return None
            payload, path = found
            saved = {"agent": "dreamer", **payload["identity"]}  # an identity that names no agent is a Dreamer's
            checkpoint.check_identity(saved, self.identity, path)
        except BaseException:
            if self.lock is not None:
                self.lock.release()  # this run ends here: the folder is free again at once, not when the loop is freed
            raise
        self.agent.load_state_dict(payload)
        self.counters.update(payload["counters"])
        checkpoint.set_rng_state(payload["rng"])
        self._saved = dict(self.counters)
        return path

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: the agent's entries, the counters and the identity (checkpoint.save adds the RNG states)."""
        return {**self.agent.state_dict(), "counters": dict(self.counters), "identity": self.identity}

    def save(self) -> None:
        """A checkpoint at the current step (every rank checks the weights agree; rank 0 writes)."""
        if self.config.data_parallel:
            distributed.check_in_sync(self.agent.module)
        if self.main and self._saved != self.counters:
            checkpoint.save(self.run_dir / "checkpoints", self.counters["step"], self.state_dict())
        self._saved = dict(self.counters)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, float]:
        """Act, update, log, checkpoint and evaluate until `steps` (or `minutes`); the final evaluation's scalars."""
        cfg, agent, counters = self.config, self.agent, self.counters
        if cfg.data_parallel:
            distributed.broadcast_state(agent.module)  # every rank starts from rank 0's weights
            if not distributed.is_main():  # ranks > 0 draw their own random numbers (a resume restored rank 0's)
                seed_everything(distributed.rank_seed(cfg.seed) + counters["step"])
        progress = _Progress(cfg, counters["step"], cfg.desc or self.run_dir.name, disable=not self.main)
        bar = progress.bar
        if cfg.data_parallel:
            self.logger = logger = RankLogger(lambda: Logger(self.run_dir, cfg.tensorboard, bar))  # rank 0 writes
        else:
            self.logger = logger = _Alone(Logger(self.run_dir, cfg.tensorboard, bar))
        marks = {"log": counters["step"]}
        marks["train"] = -cfg.log_every  # the first update's scalars are logged at once
        timer = {"time": time.time(), "step": counters["step"], "updates": counters["updates"]}
        summary: dict[str, float] = {}
        evaluated_at = -1
        deadline = time.time() + 60 * cfg.minutes if cfg.minutes else float("inf")
        try:
            agent.begin(counters)
            if counters["step"] == 0 and cfg.eval_every and cfg.evaluate_first:
                summary, evaluated_at = self._evaluate(self._next_evaluation()), 0
            while counters["step"] < cfg.steps and time.time() < deadline:
                acted = agent.act(counters)
                counters["step"] += acted.steps
                progress.update(counters["step"])
                for episode in acted.episodes:
                    counters["episodes"] += 1
                    logger.scalars(episode, prefix="episode/")
                    logger.write(counters["step"])
                updates, metrics = agent.update(counters)
                counters["updates"] += updates

                step = counters["step"]
                if metrics is not None and step - marks["train"] >= cfg.log_every:
                    marks["train"] = step
                    logger.scalars(metrics)
                    logger.scalar("train/updates", counters["updates"])
                if step - marks["log"] >= cfg.log_every:
                    marks["log"] = step
                    now = time.time()
                    elapsed = max(now - timer["time"], 1e-9)
                    logger.scalar(f"perf/{cfg.unit}_per_s", (step - timer["step"]) / elapsed)
                    logger.scalar("perf/train_steps_per_s", (counters["updates"] - timer["updates"]) / elapsed)
                    timer = {"time": now, "step": step, "updates": counters["updates"]}
                    logger.sync(step)  # every rank's scalars, averaged
                # cadences at multiples of their interval: a resumed run meets them where the run that never
                # stopped does, whatever step it resumed at
                more = step < cfg.steps and time.time() < deadline
                evaluate = _crossed(step, acted.steps, cfg.eval_every) and more
                pictures = cfg.video_every > 0 and _crossed(step, acted.steps, cfg.video_every) and more
                index = self._next_evaluation() if evaluate else None  # counted in the checkpoint: a resume goes on from it
                if _crossed(step, acted.steps, cfg.checkpoint_every) or evaluate or pictures:
                    self.save()  # before evaluating: a failing evaluation or picture costs no training
                    if cfg.exact_resume:
                        agent.restart(counters)  # what a resume from this checkpoint does: both go on alike
                if evaluate:
                    summary, evaluated_at = self._evaluate(index), step
                if pictures:
                    self._pictures()
            logger.sync(counters["step"])
            index = self._next_evaluation() if evaluated_at != counters["step"] or not summary else None
            self.save()
            if index is not None:
                summary = self._evaluate(index)
            if cfg.video_every >= 0:
                self._pictures()
        finally:
            bar.close()
            logger.close()
            agent.close()
            if self.lock is not None:
                self.lock.release()
        return summary

    def _next_evaluation(self) -> int:
        self.counters["evaluations"] += 1
        return self.counters["evaluations"] - 1

    def _evaluate(self, index: int) -> dict[str, float]:
        """Evaluation `index` on its own seeds, with the random states put back afterwards (rank 0 only)."""
        if not self.main:
            return {}
        cfg = self.config
        with preserved_rng():
            summary = self.agent.evaluate(
                cfg.eval_episodes, evaluation_seed(cfg.seed, index, cfg.eval_episodes), self.counters["step"], self.logger
            )
        self.logger.scalars(summary)
        self.logger.write(self.counters["step"])
        return summary

    def _pictures(self) -> None:
        if not self.main:
            return
        with preserved_rng():
            self.agent.pictures(evaluation_seed(self.config.seed, self.counters["evaluations"], 4), self.counters["step"], self.logger)


class _Progress:
    """The run's progress bar, over the budget that ends the run.

    Without `minutes`: the loop's steps (environment steps or batches, `LoopConfig.unit`) up to `steps`.
    With `minutes`: seconds of the wall-clock budget, and when the steps will run out first at the pace
    of this process so far, seconds up to then; the label counts the steps (`name step 1,200/1,000,000`,
    `name batch 120/400`). Logger sets the postfix.
    """

    def __init__(self, cfg: LoopConfig, step: int, label: str, disable: bool):
        from tqdm import tqdm

        self.steps, self.label, self.budget = cfg.steps, label, 60.0 * cfg.minutes
        self.noun = {"env_steps": "step", "batches": "batch"}[cfg.unit]
        self.start, self.first_step = time.time(), step
        common = dict(dynamic_ncols=True, mininterval=1.0, file=sys.stderr, leave=cfg.leave, disable=disable)
        if self.budget:
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]"
            self.bar = tqdm(total=self.budget, unit="s", desc=self._label(step), bar_format=fmt, **common)
        else:
            self.bar = tqdm(total=cfg.steps, initial=min(step, cfg.steps), unit=self.noun, desc=label, **common)

    def _label(self, step: int) -> str:
        return f"{self.label} {self.noun} {step:,}/{self.steps:,}"

    def update(self, step: int) -> None:
        """The run is at step `step`."""
        if not self.budget:
            self.bar.update(min(step, self.steps) - self.bar.n)
            return
        elapsed = time.time() - self.start
        done = step - self.first_step
        total = self.budget
        if step >= self.steps:
            total = min(total, elapsed)
        elif done > 0:  # when the steps run out at this pace, if that comes before the deadline
            total = min(total, elapsed + (self.steps - step) * elapsed / done)
        self.bar.total = max(total, 1e-9)
        self.bar.set_description_str(self._label(step), refresh=False)
        self.bar.update(min(elapsed, total) - self.bar.n)


def _crossed(step: int, taken: int, every: int) -> bool:
    """Whether the last `taken` steps, which ended at `step`, crossed a multiple of `every` (never when every <= 0)."""
    return every > 0 and step // every > (step - taken) // every


def _remove_torn_writes(run_dir: Path) -> None:
    """Delete the temporary files of writes a killed process left (atomic_write's `.<name>.<random>.tmp`): they never
    got a final name, and nobody else writes here now that this process holds the lock."""
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "replay", *(run_dir / "replay").glob("rank-*")):
        if folder.is_dir():
            for path in [*folder.glob(".*.tmp"), *folder.glob("ep-*.npz.tmp")]:
                path.unlink(missing_ok=True)


class _Alone:
    """A Logger with RankLogger's `sync`, for a process that trains alone."""

    def __init__(self, logger: Logger):
        self.logger = logger

    def sync(self, step: int) -> None:
        self.logger.write(step)

    def __getattr__(self, name: str):
        return getattr(self.logger, name)


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


__all__ = ["Acted", "Agent", "COUNTERS", "Loop", "LoopConfig"]
