"""Checkpoints of a run: everything needed to resume, written atomically, the last two kept.

A checkpoint is one torch file `checkpoints/ckpt-<step>.pt` holding the learner's state (model,
optimisers, return normaliser), the counters, the RNG states of python, numpy and torch, and
the identity of the run (env, backbone, world-model config) that a resume must match. It is
written to a temporary file and renamed (`agents.common.atomic_write`), so a SIGKILL or a full
disk leaves the previous checkpoints intact and no partial file under a checkpoint's name.
Loading tries the newest file first; a file that cannot be read is reported and the previous
one is used.
"""

from __future__ import annotations

import os
import random
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.common import atomic_write

KEEP = 2
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


class CheckpointMismatch(ValueError):
    """A resume whose environment or model differs from the run's checkpoint."""


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints(directory: str | os.PathLike) -> list[Path]:
    """The checkpoint files in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m[1]), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save(directory: str | os.PathLike, step: int, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus RNG states) as checkpoint `step`, atomically, and delete all but the last KEEP."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = atomic_write(directory / f"ckpt-{step:09d}.pt", lambda f: torch.save({**payload, "rng": rng_state()}, f))
    for old in checkpoints(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def load(directory: str | os.PathLike, map_location: str | torch.device = "cpu", log=None) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint in `directory` and its path, or None if there is none.

    A corrupt file is reported through `log` (default: stderr) and the previous one is tried.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    files = checkpoints(directory)
    for i, path in enumerate(reversed(files)):
        try:
            payload = torch.load(path, map_location=map_location, weights_only=False)
            if not isinstance(payload, dict) or "rng" not in payload:
                raise ValueError("not a memwm checkpoint")
        except Exception as e:  # any unreadable file: a torn write, a truncated copy, a wrong format
            rest = files[: len(files) - 1 - i]
            fallback = f"falling back to {rest[-1].name}" if rest else "no earlier checkpoint to fall back to"
            log(f"memwm: checkpoint {path} is corrupt ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {fallback}")
            continue
        return payload, path
    if files:
        raise RuntimeError(f"every checkpoint in {directory} is corrupt: {[p.name for p in files]}")
    return None


def check_identity(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Raise CheckpointMismatch naming the first field of the run's identity that differs."""
    for key, a, b in _differences(saved, current):
        raise CheckpointMismatch(
            f"run {path.parent.parent} was trained with {key}={a!r}, but this command asks for {key}={b!r}; "
            f"use another --run or the same {key}"
        )


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = ""):
    for key, b in current.items():
        if key not in saved:
            continue
        a = saved[key]
        if isinstance(a, dict) and isinstance(b, dict):
            yield from _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key}", a, b
