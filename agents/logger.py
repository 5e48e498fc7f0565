"""The one logger of a run: TensorBoard scalars and videos, `metrics.jsonl`, and the tqdm progress bar's postfix.

Scalars are named `group/name` once and never renamed (TensorBoard charts and the JSON lines
share the names): `episode/return`, `episode/length`, `eval/return`, `eval/success`,
`train/loss/...` (the world model's terms), `train/kl`, `train/actor_entropy`,
`train/return_scale`, `perf/env_steps_per_s` (`perf/batches_per_s` where the loop counts batches of offline
data), `perf/train_steps_per_s`, ...

Under torchrun, `RankLogger` is the run's Logger on rank 0, with every rank's scalars averaged in.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np

from agents import distributed
from world_models.figures import write_png
from world_models.video import add_tensorboard_video, write_video

# The scalars shown in the progress bar, by short label.
_POSTFIX = {"return": "episode/return", "eval": "eval/return", "sps": "perf/env_steps_per_s"}


class Logger:
    """Collects scalars with `scalar()`/`scalars()` and writes them all at `write(step)`."""

    def __init__(self, directory: str | os.PathLike, tensorboard: bool = True, bar=None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.bar = bar
        self._pending: dict[str, float] = {}
        self._latest: dict[str, float] = {}
        end_torn_line(self.directory / "metrics.jsonl")
        self._jsonl = open(self.directory / "metrics.jsonl", "a", buffering=1)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.directory), flush_secs=30)

    def scalar(self, name: str, value: Any) -> None:
        value = float(value.item() if hasattr(value, "item") else value)
        self._pending[name] = value

    def scalars(self, values: dict[str, Any], prefix: str = "") -> None:
        for name, value in values.items():
            self.scalar(prefix + name, value)

    def write(self, step: int) -> None:
        """Write the pending scalars at env step `step` to TensorBoard and metrics.jsonl; refresh the bar."""
        if not self._pending:
            return
        if self._tb is not None:
            for name, value in self._pending.items():
                self._tb.add_scalar(name, value, step)
        record = {"step": int(step), **{k: (v if math.isfinite(v) else str(v)) for k, v in self._pending.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._latest.update(self._pending)
        self._pending.clear()
        if self.bar is not None:
            self.bar.set_postfix(
                {label: f"{self._latest[name]:.3g}" for label, name in _POSTFIX.items() if name in self._latest}, refresh=False
            )

    def video(self, name: str, frames: np.ndarray, step: int, fps: int = 10, formats: tuple[str, ...] = ("gif",)) -> list[Path]:
        """Write frames (T, H, W, 3) uint8 to TensorBoard and to videos/<name>-<step>.<format>; return the files."""
        if self._tb is not None:
            add_tensorboard_video(self._tb, name, frames, step, fps)
        stem = name.replace("/", "-")
        return [write_video(self.directory / "videos" / f"{stem}-{step:09d}.{fmt}", frames, fps) for fmt in formats]

    def image(self, name: str, image: np.ndarray, step: int) -> Path:
        """Write an RGB image (H, W, 3) uint8 to TensorBoard and to videos/<name>-<step>.png; return the file."""
        if self._tb is not None:
            self._tb.add_image(name, image, step, dataformats="HWC")
        return write_png(self.directory / "videos" / f"{name.replace('/', '-')}-{step:09d}.png", image)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        self._jsonl.close()


class RankLogger:
    """The run's Logger on rank 0 only, with every rank's scalars averaged in.

    One process: a pass-through to the Logger (`sync` is `write`). Several ranks: `scalar`/`write`
    only keep values (no files, no communication, so any rank may call them at any time);
    `sync(step)`, which every rank calls at the same points of the loop, gathers the kept values to
    rank 0, which writes each scalar's mean over ranks and over the values since the last sync
    (e.g. `episode/return` is the mean return of the episodes that ended on any rank). Videos and
    other writes happen on rank 0 only.
    """

    def __init__(self, make_logger: Callable[[], Logger]):
        self.logger = make_logger() if distributed.is_main() else None
        self.several = distributed.world_size() > 1
        self._kept: dict[str, list[float]] = {}
        self._pending: dict[str, float] = {}

    def scalar(self, name: str, value) -> None:
        value = float(value.item() if hasattr(value, "item") else value)
        if self.several:
            self._pending[name] = value
        else:
            self.logger.scalar(name, value)

    def scalars(self, values: dict, prefix: str = "") -> None:
        for name, value in values.items():
            self.scalar(prefix + name, value)

    def write(self, step: int) -> None:
        if not self.several:
            self.logger.write(step)
            return
        for name, value in self._pending.items():  # like Logger.write: the last value per name and write
            self._kept.setdefault(name, []).append(value)
        self._pending.clear()

    def sync(self, step: int) -> None:
        """Collective: write every rank's scalars kept since the last sync, averaged, at `step` (rank 0)."""
        self.write(step)
        if not self.several:
            return
        gathered = distributed.gather_objects(self._kept)
        self._kept = {}
        if gathered is None:
            return
        merged: dict[str, list[float]] = {}
        for kept in gathered:
            for name, values in kept.items():
                merged.setdefault(name, []).extend(values)
        self.logger.scalars({name: sum(v) / len(v) for name, v in merged.items()})
        self.logger.write(step)

    def video(self, *args, **kwargs):
        return self.logger.video(*args, **kwargs) if self.logger is not None else []

    def image(self, *args, **kwargs):
        return self.logger.image(*args, **kwargs) if self.logger is not None else None

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl, in order; [] when there is none.

    A line that does not parse (the last line of a run killed while writing it) is left out: a
    reader never fails on a torn record.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_evals(run_dir: str | os.PathLike) -> list[dict[str, float | None]]:
    """The evaluations in a run's metrics.jsonl, in order: [{"step", "return", "success"}, ...]; success is
    None for tasks without a goal (`agents.evaluate.has_success`)."""
    return [
        {"step": r["step"], "return": float(r["eval/return"]), "success": r.get("eval/success")}
        for r in read_metrics(run_dir)
        if "eval/return" in r
    ]


def end_torn_line(path: Path) -> None:
    """Cut a torn last line (no newline: the writer was killed) off `path`, so that appending starts a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)
