"""Helpers every part of the agents layer shares, each in one place: the device, seeding, atomic
writes, and the keys of an environment step.

The environments define the step's flags (`envs.FLAGS`) and the world models the observation
keys they read (`world_models.model.OBS_KEYS`); the agents layer, which sees both, takes them
from there rather than spelling them a third time.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Callable, IO, Union

import numpy as np
import torch

from envs.core import FLAGS
from world_models.model import OBS_KEYS

__all__ = ["FLAGS", "OBS_KEYS", "atomic_write", "obs_to_torch", "pick_device", "seed_everything"]


def pick_device(name: str) -> torch.device:
    """`auto` (a GPU when torch sees one), `cpu`, `cuda` or `cuda:N` -> a torch device; anything else is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (name == "cuda" or name.startswith("cuda:")):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu or cuda[:N]")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no GPU; use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def atomic_write(path: str | os.PathLike, data: Union[bytes, str, Callable[[IO[bytes]], object]]) -> Path:
    """Write `path` so that it holds either its old content or all of `data`, never a part.

    data: bytes, text (UTF-8), or a function that writes into the open binary file (e.g.
    `lambda f: torch.save(obj, f)`). The data goes to a temporary file in the same folder, is
    flushed to disk, then renamed over `path`; on any OSError (a full disk) the temporary file is
    removed and the error raised, so no partial file ever has the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def obs_to_torch(obs: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """The model keys of a batched observation (N, ...) as tensors on `device` (copied: env arrays may be views)."""
    return {k: torch.as_tensor(np.array(obs[k]), device=device) for k in OBS_KEYS if k in obs}
