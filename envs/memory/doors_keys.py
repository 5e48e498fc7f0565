"""memory/doors-keys-K: context-dependent recall (S4WM's "keys and doors").

A key room holds K keys of different colours in a row; stepping on a key picks it up (nothing
shows which keys are held). A corridor of 8 cells leads to a hall with K doors in its top
wall, one per key colour in a random order. A door looks open (a dark doorway in a coloured
frame) if its key is held and closed (solid colour) otherwise; walking up into an open door
gives +1 and ends the episode, closed doors are walls. Doors cannot be seen from the key room.

- Context phase: while the agent has not yet left the key room. Query phase: from the first
  step in the corridor on (sticky). Info `door_visible`: a door is in view (these are the
  frames whose content depends on the keys collected long before).
- Scripted policy: collects the cue's keys, walks the hall past every door, then returns to
  the first open door and enters it (with no key it walks the hall until the time limit).
- Cue: the keys the scripted policy collects, a sequence of key indices (0..K-1), drawn per
  episode (each key with probability 1/2, at least one); `reset(options={"cue": [0, 2]})`.
- Moves: 0 up, 1 down, 2 left, 3 right. Episodes are truncated after 10 K + 30 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.memory import tiles
from envs.memory.base import MemoryTask

CORRIDOR = 8
HEIGHT = 6  # rows: 0-1 wall, 2-4 key room, 3 corridor, 3-4 hall, 2 doors, 5 wall


class DoorsKeys(MemoryTask):
    probe_keys = ("door_visible",)

    def __init__(self, n_keys: int = 3):
        if not 1 <= n_keys <= 10:
            raise ValueError(f"doors-keys: n_keys must be in 1..10, got {n_keys}")
        super().__init__(num_actions=4)
        self.n_keys = n_keys
        self.time_limit = 10 * n_keys + 30
        self.exit_x = 2 * n_keys + 2  # first corridor cell
        self.hall_x = self.exit_x + CORRIDOR  # first hall cell
        self.door_xs = [self.hall_x + 1 + 2 * i for i in range(n_keys)]
        self.key_xs = [2 + 2 * i for i in range(n_keys)]

    def _build(self, colours: np.ndarray) -> None:
        self._colours = colours  # (K,) palette index of each key
        width = self.hall_x + 2 * self.n_keys + 2
        grid = np.full((HEIGHT, width), tiles.WALL_ID)
        floor = tiles.solid_id(tiles.FLOOR_C)
        grid[2:5, 1 : self.exit_x] = floor  # key room
        grid[3, self.exit_x : self.hall_x] = floor  # corridor
        grid[3:5, self.hall_x : self.hall_x + 2 * self.n_keys + 1] = floor  # hall
        for i, x in enumerate(self.key_xs):
            grid[3, x] = tiles.sprite_id("diamond", colours[i], tiles.FLOOR_C)
        for i, x in enumerate(self.door_xs):
            grid[2, x] = tiles.door_id(colours[self.door_keys[i]], is_open=False)
        walkable = grid != tiles.WALL_ID
        walkable[2, self.door_xs] = False  # doors open by the step() rule only
        self.world = tiles.TileWorld(grid, walkable)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        colours = self.np_random.choice(len(tiles.PALETTE), self.n_keys, replace=False)
        self.door_keys = self.np_random.permutation(self.n_keys)  # door i opens with key door_keys[i]
        drawn = self.np_random.random(self.n_keys) < 0.5
        if not drawn.any():
            drawn[self.np_random.integers(self.n_keys)] = True
        cue = self._cue(options, tuple(int(i) for i in np.flatnonzero(drawn)))
        if any(not 0 <= int(k) < self.n_keys for k in cue):
            raise ValueError(f"doors-keys: cue must list key indices in 0..{self.n_keys - 1}, got {cue}")
        self.cue = tuple(sorted({int(k) for k in cue}))
        self._build(colours)
        self.held: set[int] = set()
        self.pos = (2, 1)
        self.t = 0
        self.in_query = False
        self.plan = self._plan()
        return self._observe(), self._info()

    def _plan(self) -> list[int]:
        moves: list[int] = []
        for i, x in enumerate(self.key_xs):
            moves += [3] * (x - (1 if i == 0 else self.key_xs[i - 1]))
            if i in self.cue:
                moves += [1, 0]  # down onto the key, back up
        moves += [3] * (self.exit_x - 1 - self.key_xs[-1]) + [1]  # to the exit row
        hall_end = self.hall_x + 2 * self.n_keys
        moves += [3] * (hall_end - (self.exit_x - 1))  # along the corridor and past every door
        open_doors = [x for i, x in enumerate(self.door_xs) if self.door_keys[i] in self.cue]
        if open_doors:
            moves += [2] * (hall_end - open_doors[0]) + [0]
        return moves

    def step(self, action):
        if self.t >= self.time_limit:
            raise RuntimeError("doors-keys: step() after the episode ended; call reset()")
        dy, dx = tiles.MOVES[int(action)]
        y, x = self.pos[0] + dy, self.pos[1] + dx
        self.t += 1
        reward, terminated = 0.0, False
        if y == 2 and x in self.door_xs:
            if self.door_keys[self.door_xs.index(x)] in self.held:
                self.pos, reward, terminated = (y, x), 1.0, True
        elif self.world.can_enter(y, x):
            self.pos = (int(y), int(x))
            if y == 3 and x in self.key_xs:
                self._pick(self.key_xs.index(x))
        self.in_query = self.in_query or self.pos[1] >= self.exit_x
        truncated = not terminated and self.t >= self.time_limit
        return self._observe(), reward, terminated, truncated, self._info()

    def _pick(self, key: int) -> None:
        self.held.add(key)
        self.world.set(3, self.key_xs[key], tiles.solid_id(tiles.FLOOR_C))
        door = int(np.flatnonzero(self.door_keys == key)[0])
        self.world.set(2, self.door_xs[door], tiles.door_id(self._colours[key], is_open=True))

    def scripted_action(self) -> int:
        return self.plan[self.t] if self.t < len(self.plan) else 2 + self.t % 2  # left, right: wait in the hall

    def _observe(self) -> dict[str, np.ndarray]:
        hud = np.full(8, tiles.solid_id(tiles.BLACK_C))
        hud[0] = tiles.solid_id(tiles.WHITE_C if self.in_query else tiles.GREY_C)
        self._image = self.world.render(*self.pos, hud)
        return {"image": self._image}

    def _info(self) -> dict[str, Any]:
        y, x = self.pos
        return {
            "phase": "query" if self.in_query else "context",
            "door_visible": any(self.world.in_view(y, x, 2, dx) for dx in self.door_xs),
            "keys_held": len(self.held),
        }
