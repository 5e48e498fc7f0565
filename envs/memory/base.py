"""What every memory/* task shares: image observations, a context phase then a query phase, a scripted policy.

Each task documents in its docstring what the agent must remember (its *cue*), which steps are
context and which are query, and which per-step masks describe the probe. At every step
`info["phase"]` is "context" or "query" (the phase of the observation just returned), and every
key in `probe_keys` is a bool in `info` that `envs.collect` stores per step in the episode file.
`reset(options={"cue": ...})` replaces the cue the task would have drawn, leaving everything
else drawn from the seed unchanged, so that tests can show that the cue decides what comes later.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import IMAGE_SHAPE, image_space


class MemoryTask(gym.Env):
    """Base of the memory suite: subclasses build an `envs.memory.tiles.TileWorld` and implement the task."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    render_mode = "rgb_array"
    probe_keys: tuple[str, ...] = ()  # bool info keys that describe the probe, stored by collect

    def __init__(self, num_actions: int = 4):
        self.observation_space = gym.spaces.Dict({"image": image_space()})
        self.action_space = gym.spaces.Discrete(num_actions)
        self._image = np.zeros(IMAGE_SHAPE, np.uint8)

    def scripted_action(self) -> int:
        """The action of the task's scripted policy in the current state (explores, then queries)."""
        raise NotImplementedError

    def render(self) -> np.ndarray:
        return self._image

    def _phase_info(self) -> dict[str, Any]:
        """`phase` and `query_start` for tasks whose query phase starts at a fixed step `self.context_len`."""
        return {
            "phase": "query" if self.t >= self.context_len else "context",
            "query_start": self.t == self.context_len,
        }

    @staticmethod
    def _cue(options: dict[str, Any] | None, drawn):
        """The cue given in reset options, or the one drawn from the seed."""
        if options and options.get("cue") is not None:
            return options["cue"]
        return drawn
