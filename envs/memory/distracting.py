"""memory/distracting-L: reward prediction over a long distracting corridor (S4WM's "distracting memory").

The agent starts in a small room whose floor has the cue colour (red or blue). Every step it
moves one cell along a corridor of length L whose floor is re-strewn with random objects each
step (distractors: they never repeat and predict nothing). At the end, a junction shows the
red arm above and the blue arm below; the action there picks an arm.

- Actions: 0 take the upper (red) arm, 1 take the lower (blue) arm; in the corridor they do nothing.
- Observations 0 .. L are the cue and the corridor (phase "context"; the cue is in view at
  observations 0..4, info `cue_visible`), observation L is the junction, L + 1 the chosen arm
  (phase "query" for both). Reward +1 if the arm's colour is the cue's, else -1, received
  with observation L + 1 (info `reward_decided`), which is terminal. Episodes are L + 2
  observations long.
- Cue: 0 (red) or 1 (blue), in info `cue` at every step with `cue_step` 0 (it is in view from
  observation 0); `reset(options={"cue": 0 or 1})` sets it, leaving the distractors and
  everything else drawn from the seed unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.memory import tiles
from envs.memory.base import MemoryTask

CUE_COLOURS = (0, 3)  # palette indices: red, blue
HEIGHT = 9  # rows 1..7 open, the agent walks along row 4
ROW = 4
START_X = 2  # the cue room spans x = 1..3
DISTRACTOR_DENSITY = 0.35


class Distracting(MemoryTask):
    probe_keys = ("cue_visible", "reward_decided")

    def __init__(self, length: int = 100):
        if length < 8:
            raise ValueError(f"distracting: the corridor length must be >= 8 (so the cue leaves the view), got {length}")
        super().__init__(num_actions=2)
        self.length = length
        self._build()

    def _build(self) -> None:
        self._floor = tiles.solid_id(tiles.FLOOR_C)
        self._cue_tiles = [tiles.solid_id(c) for c in CUE_COLOURS]
        others = [c for c in range(len(tiles.PALETTE)) if c not in CUE_COLOURS]  # never the cue colours
        self._distractors = np.array([tiles.sprite_id(s, c, tiles.FLOOR_C) for s in tiles.SHAPE_NAMES for c in others])
        self.junction_x = START_X + self.length
        width = self.junction_x + 3
        grid = np.full((HEIGHT, width), tiles.WALL_ID)
        grid[1:8, 1 : self.junction_x] = self._floor
        grid[1:ROW, self.junction_x] = self._cue_tiles[0]  # the upper arm is red
        grid[ROW, self.junction_x] = self._floor
        grid[ROW + 1 : 8, self.junction_x] = self._cue_tiles[1]  # the lower arm is blue
        self._grid = grid
        self._hud_row = np.full(8, tiles.solid_id(tiles.BLACK_C))
        # cells the distractors may cover: the corridor, not the cue room, the agent's row or the junction
        mask = np.zeros((HEIGHT, width), bool)
        mask[1:8, START_X + 2 : self.junction_x - 1] = True
        mask[ROW, :] = False
        padded = np.pad(mask, tiles.PAD)
        top, left = ROW + tiles.PAD - tiles.AGENT_ROW, START_X + tiles.PAD - tiles.AGENT_COL
        self._free = np.stack(
            [padded[top : top + tiles.VIEW_ROWS, left + t : left + t + tiles.VIEW_COLS] for t in range(self.length + 1)]
        )  # (L + 1, 7, 8): the window at each corridor step

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        drawn = int(self.np_random.integers(2))
        self.cue = int(self._cue(options, drawn))
        if self.cue not in (0, 1):
            raise ValueError(f"distracting: cue must be 0 (red) or 1 (blue), got {self.cue}")
        grid = self._grid.copy()
        grid[1:8, 1 : START_X + 2] = self._cue_tiles[self.cue]
        self.world = tiles.TileWorld(grid, grid != tiles.WALL_ID)
        # the distractors of every corridor step, drawn at once: (L + 1, 7, 8) tile ids and where they go
        shape = (self.length + 1, tiles.VIEW_ROWS, tiles.VIEW_COLS)
        pick = self._distractors[self.np_random.integers(len(self._distractors), size=shape)]
        self._strewn = np.where(self.np_random.random(shape) < DISTRACTOR_DENSITY, pick, self._floor)
        self.t = 0
        self.x, self.y = START_X, ROW
        self.choice = None
        return self._observe(), self._info()

    def step(self, action):
        if self.choice is not None:
            raise RuntimeError("distracting: step() after the episode ended; call reset()")
        action = int(action)
        if action not in (0, 1):
            raise ValueError(f"distracting: action must be 0 (upper arm) or 1 (lower arm), got {action}")
        self.t += 1
        reward, terminated = 0.0, False
        if self.x < self.junction_x:
            self.x += 1
        else:
            self.choice = action
            self.y = ROW - 1 if action == 0 else ROW + 1
            reward, terminated = (1.0 if action == self.cue else -1.0), True
        return self._observe(), reward, terminated, False, self._info()

    def scripted_action(self) -> int:
        return self.cue  # arm 0 is red (cue 0), arm 1 is blue (cue 1)

    def _observe(self) -> dict[str, np.ndarray]:
        step = self.x - START_X
        if step < len(self._strewn):  # re-strew the corridor cells in view (drawn at reset, all at once)
            window = self.world.window(self.y, self.x)  # (7, 8) writable view
            np.copyto(window, self._strewn[step], where=self._free[step])
        self._image = self.world.render(self.y, self.x, self._hud_row)
        return {"image": self._image}

    def _info(self) -> dict[str, Any]:
        return {
            "phase": "query" if self.x >= self.junction_x else "context",
            "cue_visible": self.x - tiles.AGENT_COL <= START_X + 1,  # the cue room ends at x = 3
            "reward_decided": self.choice is not None,
            "cue": self.cue,
            "cue_step": 0,
        }
