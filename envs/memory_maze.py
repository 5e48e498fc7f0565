"""memory-maze/<n>x<n>: Memory Maze (Pasukonis et al. 2022) through its dm_control tasks, 64x64 RGB.

A random maze of n x n cells with n/3-ish coloured targets; the border of the image shows the
colour of the current target; +1 for touching it, then another target is asked for. 6 discrete
actions (noop, forward, left, right, forward-left, forward-right), 4 Hz control, episodes of
1,000 (9x9), 2,000, 3,000 and 4,000 (15x15) steps, truncated at the end.

The `memory_maze` package imports the old `gym` at import time only. Building a maze task takes
seconds, so the task is built at the first reset and rebuilt only by `reset(seed=s)`; unseeded
resets continue the task's random stream, so a seed fixes the whole sequence of episodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import image_space

SIZES = (9, 11, 13, 15)


class MemoryMaze(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    def __init__(self, size: int = 9):
        if size not in SIZES:
            raise ValueError(f"memory-maze: size must be one of {SIZES}, got {size}")
        self.size = size
        self.action_space = gym.spaces.Discrete(6)
        self.observation_space = gym.spaces.Dict({"image": image_space()})
        self._env = None
        self._image = np.zeros((64, 64, 3), np.uint8)

    def _build(self, seed: int | None) -> None:
        import warnings

        from envs.dmc import load_triton_first

        load_triton_first()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the old gym's import-time notice
            from memory_maze import tasks

        make = getattr(tasks, f"memory_maze_{self.size}x{self.size}")
        if self._env is not None:
            self._env.close()
        self._env = make(seed=seed, image_only_obs=True)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self._env is None or seed is not None:
            self._build(seed)
        ts = self._env.reset()
        self._image = np.asarray(ts.observation, np.uint8)
        return {"image": self._image}, {}

    def step(self, action):
        if self._env is None:
            raise RuntimeError("memory-maze: call reset() before step()")
        ts = self._env.step(int(action))
        self._image = np.asarray(ts.observation, np.uint8)
        terminated = ts.last() and ts.discount == 0
        truncated = ts.last() and not terminated
        return {"image": self._image}, float(ts.reward or 0.0), bool(terminated), bool(truncated), {}

    def render(self) -> np.ndarray:
        return self._image

    def close(self):
        if self._env is not None:
            self._env.close()
            self._env = None
