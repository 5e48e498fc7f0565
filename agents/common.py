"""Helpers every part of the agents layer shares, each in one place: the device, seeding, atomic
writes, and the keys of an environment step.

The environments define the step's flags (`envs.FLAGS`) and the world models the observation
keys they read (`world_models.model.OBS_KEYS`); the agents layer, which sees both, takes them
from there rather than spelling them a third time.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import random
import tempfile
from pathlib import Path
from typing import IO, Union
from collections.abc import Callable

import numpy as np
import torch

from envs.core import FLAGS
from world_models.model import OBS_KEYS

__all__ = [
    "FLAGS",
    "OBS_KEYS",
    "SEEDS_PER_RUN",
    "DiskFull",
    "atomic_write",
    "evaluation_seed",
    "obs_to_torch",
    "pick_device",
    "preserved_rng",
    "seed_everything",
    "training_seed",
]

# Episode seeds: run seed s owns the block [s * SEEDS_PER_RUN, (s + 1) * SEEDS_PER_RUN). Its first half
# seeds the training environments, its second half the evaluations, so that no evaluation plays an
# episode the agent trained on. The block stays small enough that seeds fit the 32 bits some
# simulators take.
SEEDS_PER_RUN = 1_000_000
_HALF = SEEDS_PER_RUN // 2
_ENVS = 1_000  # room for this many environments seeded one after another from one training seed


def pick_device(name: str) -> torch.device:
    """`auto` (a GPU when torch sees one), `cpu`, `cuda` or `cuda:N` -> a torch device; anything else is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (name == "cuda" or name.startswith("cuda:")):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu or cuda[:N]")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no GPU; use --device cpu or auto")
    return torch.device(name)


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse instead of returning it to the system.

    A training step on the CPU allocates and frees the same large activation buffers every update;
    by default glibc serves each from a fresh mmap and unmaps it on free, so every update pays the
    kernel's page faults and zeroing again (system time of the same order as the arithmetic). Raising
    the mmap and trim thresholds keeps those pages in the heap. The process's peak memory is unchanged;
    its resident size stays at the peak. Returns False where the C library is not glibc (nothing is done).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)
    most = 2**31 - 1
    return bool(mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(M_TRIM_THRESHOLD, most))


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class DiskFull(OSError):
    """A write that failed for lack of space: the run stops; every file it had written whole is intact."""


def training_seed(seed: int, offset: int) -> int:
    """A seed of run `seed`'s training range; environment i of a vector seeded with it takes the seed + i."""
    if seed < 0:
        raise ValueError(f"the run's seed must be >= 0, got {seed}")
    return seed * SEEDS_PER_RUN + offset % (_HALF - _ENVS)


def evaluation_seed(seed: int, index: int, episodes: int) -> int:
    """The first seed of evaluation `index` of run `seed` (its episodes take this seed + 0 .. episodes - 1):
    in the evaluation range, apart from every training seed, and new for each index until the range wraps."""
    if seed < 0:
        raise ValueError(f"the run's seed must be >= 0, got {seed}")
    if not 1 <= episodes <= _HALF // 2:
        raise ValueError(f"an evaluation plays 1 to {_HALF // 2} episodes, got {episodes}")
    return seed * SEEDS_PER_RUN + _HALF + (index * episodes) % (_HALF - episodes)


@contextlib.contextmanager
def preserved_rng():
    """Run the block with python's, numpy's and torch's (CPU and CUDA) random states put back afterwards."""
    state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []):
        try:
            yield
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])


def atomic_write(path: str | os.PathLike, data: Union[bytes, str, Callable[[IO[bytes]], object]]) -> Path:
    """Write `path` so that it holds either its old content or all of `data`, never a part.

    data: bytes, text (UTF-8), or a function that writes into the open binary file (e.g.
    `lambda f: torch.save(obj, f)`). The data goes to a temporary file in the same folder, is
    flushed to disk, then renamed over `path`; on any error the temporary file is removed and the
    error raised, so no partial file ever has the final name. A full disk (or quota) raises
    DiskFull, one line naming `path`, whatever the writer made of the failed write (torch.save
    turns it into a RuntimeError about stream positions).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    sink = _Sink()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # the mode open() would give, not mkstemp's private 0600
        with os.fdopen(fd, "wb") as f:
            sink.file = f
            if callable(data):
                data(sink)
            else:
                sink.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        cause = sink.error or e
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            full = DiskFull(
                f"the disk is full: could not write {path} (no space left on {path.parent}); "
                f"the files written before are intact: free space and run again to resume"
            )
            full.errno = errno.ENOSPC
            raise full from e
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Sink:
    """The open file as a writer sees it, remembering the OSError of a failed write (torch.save hides it)."""

    def __init__(self):
        self.file, self.error = None, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self.file, name)


def cue_scalars(seen: list[bool], successes: list[float]) -> dict[str, float]:
    """What an evaluation says of a task's cue (its spec's `cue` fact) from its episodes: whether the policy looked,
    eval/cue_seen, the share of episodes in which the cue came into view (`seen`; minigrid/memory-s* starts facing
    away from it in 3 of 4 episodes), and whether it used what it saw: on goal tasks (`successes` 1.0 or 0.0, NaN
    where the task has none) eval/success_seen and eval/success_unseen, the success rate of the episodes that saw
    it and of those that did not (left out when there are none). {} when `seen` is empty (a task without a cue)."""
    if not seen:
        return {}
    seen_ = np.asarray(seen, bool)
    out = {"eval/cue_seen": float(seen_.mean())}
    succ = np.asarray(successes, float)
    if not np.isnan(succ).all():
        for name, mask in (("seen", seen_), ("unseen", ~seen_)):
            if mask.any():
                out[f"eval/success_{name}"] = float(succ[mask].mean())
    return out


def obs_to_torch(obs: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """The model keys of a batched observation (N, ...) as tensors on `device` (copied: env arrays may be views)."""
    return {k: torch.as_tensor(np.array(obs[k]), device=device) for k in OBS_KEYS if k in obs}
