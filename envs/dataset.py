"""Episodes on disk for probes: one compressed .npz per episode, and fixed-length sequences from them.

An episode file holds (T, ...) arrays stored as DreamerV3's replay stores steps (and as
`agents.replay` names its files, `ep-<index>-len<T>.npz`, so either can read the other's):

- the observation keys (`image` (T, 64, 64, 3) uint8, `vector` (T, K) float32, ...);
- `action` (T, A) float32, the action taken AFTER seeing observation t (one-hot for Discrete,
  concatenated one-hots for MultiDiscrete, the value for Box; zeros after the last observation);
- `reward` (T,) float32, the reward that arrived with observation t (0 at t = 0);
- `is_first`, `is_last`, `is_terminal` (T,) bool;
- probe arrays where the task has them: `phase` (T,) int8 (0 context, 1 query), the task's
  bool masks (`door_visible`, `reward_decided`, `cue_visible`, `query_start`), `episode` (T,)
  int64 for icrl trials; and per-episode arrays `cue`, `arm_means`.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import gymnasium as gym
import numpy as np

from envs.core import flat_vector

_NAME = re.compile(r"^ep-(\d+)-len(\d+)\.npz$")


def episode_path(directory: str | os.PathLike, index: int, length: int) -> Path:
    return Path(directory) / f"ep-{index:07d}-len{length}.npz"


def save_episode(directory: str | os.PathLike, index: int, episode: dict[str, np.ndarray]) -> Path:
    """Write `episode` as `<directory>/ep-<index>-len<T>.npz`, atomically (temporary file, then rename)."""
    if "reward" not in episode:
        raise ValueError(f"an episode needs at least 'reward'; got keys {sorted(episode)}")
    length = len(episode["reward"])
    path = episode_path(directory, index, length)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **episode)
    os.replace(tmp, path)
    return path


def load_episodes(directory: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """Every readable episode file in `directory`, in index order, as dicts of arrays.

    A file that cannot be read (a truncated copy, a disk error) is skipped with one line on stderr.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"no episode directory {str(directory)!r}")
    files = sorted((int(m[1]), p) for p in directory.iterdir() if (m := _NAME.match(p.name)))
    episodes = []
    for _, path in files:
        try:
            with np.load(path) as data:
                episodes.append({k: data[k] for k in data.files})  # reads every member: a torn one fails here
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
            reason = str(e).splitlines()[0] if str(e) else ""
            print(f"memwm: skipping episode file {path} that cannot be read ({type(e).__name__}: {reason})", file=sys.stderr)
    return episodes


def encode_action(space: gym.spaces.Space, action: Any) -> np.ndarray:
    """An env action as the float32 vector stored in episodes: one-hot (Discrete, MultiDiscrete) or the value (Box)."""
    return flat_vector(space, action)


class SequenceSampler:
    """Fixed-length windows of episodes: iterate for dicts of (L, ...) arrays, or `batch(n)` for (n, L, ...).

    Windows are drawn uniformly over the stream of all steps; one that crosses into the next
    episode has `is_first` set there, and its own first step always has `is_first` set (a model
    starts it with no memory). within_episode=True keeps each window inside one episode (only
    episodes of at least `length` steps are used). Per-episode arrays (`cue`, `arm_means`) are left out.
    """

    def __init__(self, episodes: list[dict[str, np.ndarray]], length: int, seed: int = 0, within_episode: bool = False):
        if length < 1:
            raise ValueError(f"sequence length must be >= 1, got {length}")
        if not episodes:
            raise ValueError("SequenceSampler needs at least one episode")
        self.length, self.within_episode = length, within_episode
        self.rng = np.random.default_rng(seed)
        self.episodes = []
        for ep in episodes:
            T = len(ep["reward"])
            self.episodes.append({k: v for k, v in ep.items() if v.ndim >= 1 and len(v) == T and k not in ("cue", "arm_means")})
        lengths = np.array([len(ep["reward"]) for ep in self.episodes])
        if within_episode:
            self._usable = np.flatnonzero(lengths >= length)
            if not len(self._usable):
                raise ValueError(f"no episode has {length} steps (longest: {lengths.max()}); lower the length or set within_episode=False")
        elif lengths.sum() < length:
            raise ValueError(f"the episodes hold {lengths.sum()} steps, fewer than the sequence length {length}")
        self._ends = np.cumsum(lengths)

    def sample(self) -> dict[str, np.ndarray]:
        """One window: dict of (L, ...) arrays."""
        L = self.length
        if self.within_episode:
            i = int(self.rng.choice(self._usable))
            start = int(self.rng.integers(len(self.episodes[i]["reward"]) - L + 1))
            window = {k: v[start : start + L] for k, v in self.episodes[i].items()}
        else:
            start = int(self.rng.integers(self._ends[-1] - L + 1))
            i = int(np.searchsorted(self._ends, start, side="right"))
            offset = start - (self._ends[i - 1] if i else 0)
            parts, need = [], L
            while need:
                ep = self.episodes[i]
                take = min(need, len(ep["reward"]) - offset)
                parts.append({k: v[offset : offset + take] for k, v in ep.items()})
                need, i, offset = need - take, i + 1, 0
            window = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if "is_first" in window:
            window["is_first"] = window["is_first"].copy()
            window["is_first"][0] = True
        return window

    def batch(self, n: int) -> dict[str, np.ndarray]:
        """n windows stacked: dict of (n, L, ...) arrays."""
        windows = [self.sample() for _ in range(n)]
        return {k: np.stack([w[k] for w in windows]) for k in windows[0]}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while True:
            yield self.sample()
