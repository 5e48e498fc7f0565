"""memory/teleport: memory-based reasoning (S4WM's "teleport").

A 12x12 room whose floor is split into nine regions of different colours, strewn with 14
objects, with a gold goal somewhere. The agent sees 7x8 cells around itself.

- Context phase, observations 0 .. 99: explore. The scripted policy sweeps the room in three
  rows, then wanders at random. Reaching the goal gives nothing yet.
- Teleport: the 100th move puts the agent on a random cell it has visited at least 4 cells
  (Chebyshev) away from where it stands; observation 100 (info `query_start`) is the first of
  the query phase, and it and what follows are predictable only from the memory of that place.
- Query phase, observations 100 .. 160: the HUD turns white; reaching the goal gives +1 and
  ends the episode (the scripted policy walks straight to it). Truncated after 160 steps.
- Cue: the room's appearance (region colours and objects), an integer seed; `reset(options=
  {"cue": int})` changes it and nothing else (start, goal, teleport target, scripted path).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.memory import tiles
from envs.memory.base import MemoryTask

SIZE = 12
CONTEXT, QUERY = 100, 60
N_OBJECTS = 14
SWEEP_ROWS = (2, 6, 10)


class Teleport(MemoryTask):
    probe_keys = ("query_start",)

    def __init__(self, context_steps: int = CONTEXT, query_steps: int = QUERY):
        if context_steps < 80 or query_steps < 25:
            raise ValueError(
                f"teleport: need context_steps >= 80 (to sweep the room) and query_steps >= 25 (to reach the goal), "
                f"got {context_steps} and {query_steps}"
            )
        super().__init__(num_actions=4)
        self.context_len, self.query_len = context_steps, query_steps

    def _build(self, cue: int) -> None:
        rng = np.random.default_rng(cue)
        colours = rng.choice(len(tiles.PALETTE), 9, replace=False)  # (9,) palette index per region
        region = np.arange(SIZE)[:, None] // 4 * 3 + np.arange(SIZE)[None, :] // 4  # (12, 12) region index
        background = colours[region]  # (12, 12) colour index of each cell's floor
        grid = np.full((SIZE + 2, SIZE + 2), tiles.WALL_ID)
        grid[1:-1, 1:-1] = tiles.solid_id(0) + background
        gy, gx = self.goal
        spots = [c for c in rng.permutation(SIZE * SIZE) if (1 + c // SIZE, 1 + c % SIZE) != (gy, gx)][:N_OBJECTS]
        shapes = rng.integers(len(tiles.SHAPE_NAMES), size=N_OBJECTS)
        fgs = rng.integers(len(tiles.PALETTE), size=N_OBJECTS)
        for spot, shape, fg in zip(spots, shapes, fgs):
            y, x = divmod(int(spot), SIZE)
            bg = background[y, x]
            grid[1 + y, 1 + x] = tiles.sprite_id(tiles.SHAPE_NAMES[shape], fg if fg != bg else tiles.BLACK_C, bg)
        grid[gy, gx] = tiles.sprite_id("ring", tiles.GOLD_C, background[gy - 1, gx - 1])
        self.world = tiles.TileWorld(grid, grid != tiles.WALL_ID)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        drawn = int(self.np_random.integers(2**31))
        self.goal = tuple(int(v) for v in self.np_random.integers(1, SIZE + 1, 2))
        self.pos = tuple(int(v) for v in self.np_random.integers(1, SIZE + 1, 2))
        self._teleport_u = float(self.np_random.random())  # picks the teleport target among the candidates
        self._policy_rng = np.random.default_rng(int(self.np_random.integers(2**31)))  # the scripted wandering
        self.cue = int(self._cue(options, drawn))
        self._build(self.cue)
        self.t = 0
        self.visited = {self.pos}
        self.plan = self._sweep()
        return self._observe(), self._info()

    def _sweep(self) -> list[int]:
        """Moves to the top-left, then along rows 2, 6 and 10 (the view spans 7 rows, so this sees every cell)."""
        moves, x = tiles.path_actions(self.pos, (SWEEP_ROWS[0], 1)), 1
        for i, row in enumerate(SWEEP_ROWS):
            other = SIZE + 1 - x  # 1 <-> 12
            moves += tiles.path_actions((row, x), (row, other))
            x = other
            if i + 1 < len(SWEEP_ROWS):
                moves += tiles.path_actions((row, x), (SWEEP_ROWS[i + 1], x))
        return moves[: self.context_len]

    def step(self, action):
        if self.t >= self.context_len + self.query_len:
            raise RuntimeError("teleport: step() after the episode ended; call reset()")
        dy, dx = tiles.MOVES[int(action)]
        y, x = self.pos[0] + dy, self.pos[1] + dx
        if self.world.can_enter(y, x):
            self.pos = (int(y), int(x))
        self.t += 1
        if self.t == self.context_len:
            self.pos = self._teleport_target()
        elif self.t < self.context_len:
            self.visited.add(self.pos)
        reached = self.t > self.context_len and self.pos == self.goal
        truncated = not reached and self.t >= self.context_len + self.query_len
        return self._observe(), float(reached), reached, truncated, self._info()

    def _teleport_target(self) -> tuple[int, int]:
        y, x = self.pos
        visited = sorted(self.visited)
        far = [v for v in visited if max(abs(v[0] - y), abs(v[1] - x)) >= 4]
        candidates = far or [v for v in visited if v != self.pos] or visited
        return candidates[int(self._teleport_u * len(candidates))]

    def scripted_action(self) -> int:
        if self.t < len(self.plan):
            return self.plan[self.t]
        if self.t < self.context_len:
            return int(self._policy_rng.integers(4))
        moves = tiles.path_actions(self.pos, self.goal)
        return moves[0] if moves else 0

    def _observe(self) -> dict[str, np.ndarray]:
        hud = np.full(8, tiles.solid_id(tiles.BLACK_C))
        hud[0] = tiles.solid_id(tiles.WHITE_C if self.t >= self.context_len else tiles.GREY_C)
        self._image = self.world.render(*self.pos, hud)
        return {"image": self._image}

    def _info(self) -> dict[str, Any]:
        return self._phase_info()
