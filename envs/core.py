"""The one observation format every memwm environment speaks, and the wrapper that enforces it.

An observation is a dict: `image` (64, 64, 3) uint8 and/or `vector` (K,) float32 (some
environments add more keys, e.g. the icrl/* trials), plus three flags as 0-d bool arrays:

- `is_first`: the observation came from `reset()` (the first of an episode, or of a trial);
- `is_last`: the episode ended here (terminated or truncated);
- `is_terminal`: it ended in a true terminal state (no bootstrapping past it).

`Standard` adds the flags to the wrapped environment's dict observations and applies the seed
given to `envs.make` at the first `reset()` that names none, so that the same seed gives the same
episode. Every environment `envs.make` returns is wrapped in it exactly once.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

IMAGE_SHAPE = (64, 64, 3)
FLAGS = ("is_first", "is_last", "is_terminal")
_FLAG_SPACE = gym.spaces.Box(0, 1, (), bool)
_TRUE, _FALSE = np.array(True), np.array(False)


def image_space() -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)


def vector_space(size: int, low: float = -np.inf, high: float = np.inf) -> gym.spaces.Box:
    return gym.spaces.Box(low, high, (size,), np.float32)


def one_hot(index: int, size: int) -> np.ndarray:
    """(size,) float32 with a 1 at `index`."""
    out = np.zeros(size, np.float32)
    out[index] = 1.0
    return out


def flat_vector(space: gym.spaces.Space, value) -> np.ndarray:
    """A value of a Discrete, MultiDiscrete or Box space as a flat float32 vector: one-hot (offset by the
    space's `start`), concatenated one-hots, or the values themselves."""
    if isinstance(space, gym.spaces.Discrete):
        return one_hot(int(value) - int(space.start), int(space.n))
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec, start = space.nvec.ravel(), space.start.ravel()
        out = np.zeros(int(nvec.sum()), np.float32)
        out[np.concatenate([[0], np.cumsum(nvec)[:-1]]) + np.asarray(value).ravel() - start] = 1.0
        return out
    if isinstance(space, gym.spaces.Box):
        return np.asarray(value, np.float32).ravel()
    raise ValueError(f"cannot flatten a value of {space}; expected Discrete, MultiDiscrete or Box")


def flat_size(space: gym.spaces.Space) -> int:
    """The length of `flat_vector(space, value)`."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(space.nvec.sum())
    return int(np.prod(space.shape))


def resize_nearest(image: np.ndarray, height: int = 64, width: int = 64) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W, C) image by index arrays: no interpolation, no loops."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    rows = (np.arange(height) * h) // height
    cols = (np.arange(width) * w) // width
    return image[rows[:, None], cols[None, :]]


class Standard(gym.Wrapper):
    """Adds `is_first`, `is_last`, `is_terminal` to dict observations and applies the initial seed."""

    def __init__(self, env: gym.Env, seed: int | None = None):
        super().__init__(env)
        if not isinstance(env.observation_space, gym.spaces.Dict):
            raise ValueError(f"memwm environments observe dicts, got {env.observation_space}")
        clash = [k for k in FLAGS if k in env.observation_space.spaces]
        if clash:
            raise ValueError(f"the wrapped observation already has the flag keys {clash}")
        self.observation_space = gym.spaces.Dict({**env.observation_space.spaces, **{k: _FLAG_SPACE for k in FLAGS}})
        self._initial_seed = seed
        self._seeded = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and not self._seeded:
            seed = self._initial_seed
        self._seeded = True
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self.env.action_space.seed(seed)
        return {**obs, "is_first": _TRUE, "is_last": _FALSE, "is_terminal": _FALSE}, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        last = terminated or truncated
        flags = {"is_first": _FALSE, "is_last": _TRUE if last else _FALSE, "is_terminal": _TRUE if terminated else _FALSE}
        return {**obs, **flags}, float(reward), bool(terminated), bool(truncated), info
