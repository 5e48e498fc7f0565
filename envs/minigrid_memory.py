"""minigrid/memory-s*: MiniGrid's Memory task seen first-person, as 64x64 RGB, with left/right/forward only.

The agent sees an object in a small room, walks down a corridor and must touch the matching
object at its end (MiniGrid's reward 1 - 0.9 t / max_steps for the right one, 0 and the end of
the episode for the wrong one; truncated after 5 size^2 steps). The image is MiniGrid's 7x7
partial view drawn at 9 px a tile (63x63, cells hidden behind walls black, no highlighting),
resized to 64x64 by nearest neighbour. It is assembled from MiniGrid's own tiles, drawn once
and looked up by the view's (type, colour, state) encoding, which is what MiniGrid's renderer
would draw (`reference_image`, checked in tests) at a fraction of its cost. `info["success"]`
is True when the right object was reached.

Cue: the class of the object in the start room, 0 key or 1 ball, in info `cue` at every step,
with `cue_step`, the first observation in which the object is in view (-1 until then: the agent
starts facing away from it unless it starts next to it), and `cue_visible`, whether it is in view in
this observation (what a posterior that sees only the current observation can read it from).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import image_space, resize_nearest

TILE_PX = 9
CUE_CLASSES = ("key", "ball")  # the start room's object: cue 0 or 1


class MiniGridMemory(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    def __init__(self, size: int = 7, random_length: bool = False):
        from minigrid.core.constants import OBJECT_TO_IDX
        from minigrid.envs import MemoryEnv

        if size < 7 or size % 2 == 0:
            raise ValueError(f"minigrid memory: size must be odd and >= 7, got {size}")
        self.env = MemoryEnv(size=size, random_length=random_length)
        self.action_space = gym.spaces.Discrete(3)  # MiniGrid's left, right, forward
        self.observation_space = gym.spaces.Dict({"image": image_space()})
        view = self.env.agent_view_size
        self._agent_cell = (view - 1, view // 2)  # (row, column) in the view, facing up
        self._tiles = TileCache()
        self._object_codes = {name: OBJECT_TO_IDX[name] for name in CUE_CLASSES}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, _ = self.env.reset(seed=seed)
        self._cue_pos = (1, self.env.height // 2 - 1)  # where MiniGrid's MemoryEnv puts the start room's object
        self._cue_type = self.env.grid.get(*self._cue_pos).type
        self.cue = CUE_CLASSES.index(self._cue_type)
        self.t, self.cue_step = 0, -1
        return self._observe(obs["image"]), self._cue_info(obs["image"])

    def step(self, action):
        action = int(action)
        if action not in (0, 1, 2):
            raise ValueError(f"minigrid memory: action must be 0 (left), 1 (right) or 2 (forward), got {action}")
        obs, reward, terminated, truncated, _ = self.env.step(action)
        self.t += 1
        info = {"success": bool(terminated and reward > 0), **self._cue_info(obs["image"])}
        return self._observe(obs["image"]), float(reward), terminated, truncated, info

    def scripted_action(self, wrong: bool = False) -> int:
        """The optimal policy's action: turn round to look at the start room's object until it has been in view,
        then go by a shortest path to the cell beside the matching object (wrong=True: the other object, for
        episodes whose choice is wrong). Each is a breadth-first search over (cell, direction)."""
        env = self.env
        if self.cue_step < 0:
            return self._first_action(lambda x, y, d: self._sees_cue_from(x, y, d), avoid=(env.success_pos, env.failure_pos))
        target, other = (env.failure_pos, env.success_pos) if wrong else (env.success_pos, env.failure_pos)
        return self._first_action(lambda x, y, d: (x, y) == tuple(target), avoid=(tuple(other),))

    def _first_action(self, done, avoid) -> int:
        """The first of a shortest sequence of left/right/forward that reaches a (x, y, direction) where `done`,
        never entering the cells `avoid` (each ends the episode); forward when none does."""
        from minigrid.core.constants import DIR_TO_VEC

        env = self.env
        start = (int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir))
        if done(*start):
            return 2
        first = {start: None}
        frontier = [start]
        while frontier:
            nxt = []
            for x, y, d in frontier:
                dx, dy = DIR_TO_VEC[d]
                moves = ((0, (x, y, (d - 1) % 4)), (1, (x, y, (d + 1) % 4)), (2, (x + int(dx), y + int(dy), d)))
                for action, state in moves:
                    if state in first or (action == 2 and not self._enterable(state[0], state[1], avoid)):
                        continue
                    first[state] = action if first[(x, y, d)] is None else first[(x, y, d)]
                    if done(*state):
                        return first[state]
                    nxt.append(state)
            frontier = nxt
        return 2

    def _enterable(self, x: int, y: int, avoid) -> bool:
        cell = self.env.grid.get(x, y)
        return (x, y) not in [tuple(a) for a in avoid] and (cell is None or cell.can_overlap())

    def _sees_cue_from(self, x: int, y: int, d: int) -> bool:
        """Whether the start room's object would be in view with the agent at (x, y) facing d (MiniGrid's agent_sees)."""
        env = self.env
        pos, direction = env.agent_pos, env.agent_dir
        env.agent_pos, env.agent_dir = (x, y), d
        try:
            return bool(env.agent_sees(*self._cue_pos))
        finally:
            env.agent_pos, env.agent_dir = pos, direction

    def _cue_info(self, encoded: np.ndarray) -> dict[str, int | bool]:
        """`cue`, `cue_step` and `cue_visible` from MiniGrid's (7, 7, 3) view encoding (indexed [x, y]) of this step."""
        cell = self.env.relative_coords(*self._cue_pos)  # None when outside the view
        visible = cell is not None and encoded[cell[0], cell[1], 0] == self._object_codes[self._cue_type]  # drawn, not behind a wall
        if visible and self.cue_step < 0:
            self.cue_step = self.t
        return {"cue": self.cue, "cue_step": self.cue_step, "cue_visible": bool(visible)}

    def _observe(self, encoded: np.ndarray) -> dict[str, np.ndarray]:
        """MiniGrid's (7, 7, 3) encoding of the view, indexed [x, y], drawn from cached tiles."""
        ids = self._tiles.ids(encoded.transpose(1, 0, 2))  # (7, 7) tile ids, [row, column]
        ids[self._agent_cell] = self._tiles.agent
        view = ids.shape[0]
        image = self._tiles.atlas[ids].transpose(0, 2, 1, 3, 4).reshape(view * TILE_PX, view * TILE_PX, 3)
        self._image = resize_nearest(image)
        return {"image": self._image}

    def render(self) -> np.ndarray:
        return self._image

    def reference_image(self) -> np.ndarray:
        """The same view drawn by MiniGrid's own renderer (slow; the oracle in tests)."""
        grid, visible = self.env.gen_obs_grid()  # visible: (7, 7) indexed [x, y]
        view = self.env.agent_view_size
        image = grid.render(TILE_PX, agent_pos=(view // 2, view - 1), agent_dir=3, highlight_mask=None)
        image[np.repeat(np.repeat(~visible.T, TILE_PX, 0), TILE_PX, 1)] = 0
        return resize_nearest(image)


class TileCache:
    """MiniGrid tiles by (type, colour, state) encoding, drawn once by MiniGrid's renderer, looked up by array."""

    def __init__(self):
        from minigrid.core.grid import Grid

        self._render_tile = Grid.render_tile
        self._table = np.full((16, 16, 4), -1, np.int64)  # type, colour, state -> tile id
        self._tiles = [np.zeros((TILE_PX, TILE_PX, 3), np.uint8)]  # 0: unseen, black
        self._table[0, :, :] = 0
        self.agent = self._add(self._render_tile(None, agent_dir=3, tile_size=TILE_PX))
        self.atlas = np.stack(self._tiles)

    def _add(self, tile: np.ndarray) -> int:
        self._tiles.append(np.asarray(tile, np.uint8))
        return len(self._tiles) - 1

    def ids(self, encoded: np.ndarray) -> np.ndarray:
        """(H, W, 3) encodings -> (H, W) tile ids, drawing tiles never seen before."""
        ids = self._table[encoded[..., 0], encoded[..., 1], encoded[..., 2]]
        if (ids < 0).any():
            from minigrid.core.world_object import WorldObj

            for t, c, s in {tuple(int(v) for v in e) for e in encoded[ids < 0]}:
                self._table[t, c, s] = self._add(self._render_tile(WorldObj.decode(t, c, s), tile_size=TILE_PX))
            self.atlas = np.stack(self._tiles)
            ids = self._table[encoded[..., 0], encoded[..., 1], encoded[..., 2]]
        return ids
