"""The one logger of a run: TensorBoard scalars and videos, `metrics.jsonl`, and the tqdm progress bar's postfix.

Scalars are named `group/name` once and never renamed (TensorBoard charts and the JSON lines
share the names): `episode/return`, `episode/length`, `eval/return`, `eval/success`,
`train/loss/...` (the world model's terms), `train/kl`, `train/actor_entropy`,
`train/return_scale`, `perf/env_steps_per_s`, `perf/train_steps_per_s`, ...
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

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

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        self._jsonl.close()


def read_evals(run_dir: str | os.PathLike) -> list[dict[str, float | None]]:
    """The evaluations in a run's metrics.jsonl, in order: [{"step", "return", "success"}, ...]; success is
    None for tasks without a goal (`agents.evaluate.has_success`)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    points = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "eval/return" in record:
            points.append({"step": record["step"], "return": float(record["eval/return"]), "success": record.get("eval/success")})
    return points
