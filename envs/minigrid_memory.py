"""minigrid/memory-s*: MiniGrid's Memory task seen first-person, as 64x64 RGB, with left/right/forward only.

The agent sees an object in a small room, walks down a corridor and must touch the matching
object at its end (MiniGrid's reward 1 - 0.9 t / max_steps for the right one, 0 and the end of
the episode for the wrong one; truncated after 5 size^2 steps). The image is MiniGrid's 7x7
partial view drawn at 9 px a tile (63x63, cells hidden behind walls black, no highlighting),
resized to 64x64 by nearest neighbour. `info["success"]` is True when the right object was reached.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import image_space, resize_nearest

TILE_PX = 9


class MiniGridMemory(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    def __init__(self, size: int = 7, random_length: bool = False):
        from minigrid.envs import MemoryEnv

        if size < 7 or size % 2 == 0:
            raise ValueError(f"minigrid memory: size must be odd and >= 7, got {size}")
        self.env = MemoryEnv(size=size, random_length=random_length)
        self.action_space = gym.spaces.Discrete(3)  # MiniGrid's left, right, forward
        self.observation_space = gym.spaces.Dict({"image": image_space()})
        view = self.env.agent_view_size
        self._agent_cell = (view // 2, view - 1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.env.reset(seed=seed)
        return self._observe(), {}

    def step(self, action):
        action = int(action)
        if action not in (0, 1, 2):
            raise ValueError(f"minigrid memory: action must be 0 (left), 1 (right) or 2 (forward), got {action}")
        _, reward, terminated, truncated, _ = self.env.step(action)
        return self._observe(), float(reward), terminated, truncated, {"success": bool(terminated and reward > 0)}

    def _observe(self) -> dict[str, np.ndarray]:
        grid, visible = self.env.gen_obs_grid()  # visible: (7, 7) indexed [x, y]
        image = grid.render(TILE_PX, agent_pos=self._agent_cell, agent_dir=3, highlight_mask=None)  # (63, 63, 3)
        hidden = np.repeat(np.repeat(~visible.T, TILE_PX, 0), TILE_PX, 1)
        image[hidden] = 0
        self._image = resize_nearest(image)
        return {"image": self._image}

    def render(self) -> np.ndarray:
        return self._image
