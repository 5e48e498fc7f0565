"""memory/rooms-N: long-term imagination (S4WM's "two/four/ten rooms").

N rooms of 8x6 cells in a row, joined by doors; each room has its own floor colour and four
objects (random shapes and colours). The agent sees 7x8 cells around itself, never a whole
room at once, and moves up/down/left/right.

- Context phase, observations 0 .. C-1 (C = 75 N): explore. The scripted policy sweeps every
  room in a snake from the first room to the last, then steps back and forth in the last room.
- Query phase, observations C .. 2C: the HUD (top row) turns white and shows the colour of a
  target room. The scripted policy walks the context path back in reverse, so observation C + k
  shows the place seen at observation C - k: a world model must regenerate it from what it saw
  up to 1,500 steps earlier. Reward: +1 the first query step the agent stands in the target room.
  The episode is truncated after 2C steps (300 steps for N = 2, 1,500 for N = 10).
- Cue: the rooms' appearance (floor colours and objects), an integer seed; `reset(options=
  {"cue": int})` changes what the rooms look like and nothing else (layout, target, path).
- Per-step info: `phase`, `room` (the agent's room index), `query_start` (True on observation C).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.memory import tiles
from envs.memory.base import MemoryTask

ROOM_W, ROOM_H = 8, 6
DOOR_Y = 1 + ROOM_H // 2
OBJECTS_PER_ROOM = 4


class Rooms(MemoryTask):
    probe_keys = ("query_start",)

    def __init__(self, n_rooms: int = 2, steps_per_room: int = 150):
        if not 2 <= n_rooms <= 12:
            raise ValueError(f"rooms: n_rooms must be in 2..12 (one colour each), got {n_rooms}")
        if steps_per_room < 130:
            raise ValueError(f"rooms: steps_per_room must be >= 130 to sweep a room and come back, got {steps_per_room}")
        super().__init__(num_actions=4)
        self.n_rooms = n_rooms
        self.context_len = steps_per_room * n_rooms // 2
        self.plan = self._context_plan()

    # -------------------------------------------------------------- layout
    @staticmethod
    def _room_x0(i: int) -> int:
        return i * (ROOM_W + 1) + 1

    def _context_plan(self) -> list[int]:
        """Moves of the scripted context phase: snake through every room, then back and forth."""
        cells = [(1, 1)]
        for i in range(self.n_rooms):
            x0 = self._room_x0(i)
            y, x = cells[-1]
            cells += [(yy, x) for yy in range(y - 1, 0, -1)]  # up to the top row
            for row in range(1, ROOM_H + 1):
                xs = range(x0, x0 + ROOM_W) if row % 2 else range(x0 + ROOM_W - 1, x0 - 1, -1)
                cells += [(row, xx) for xx in xs if (row, xx) != cells[-1]]
                if row < ROOM_H:
                    cells.append((row + 1, cells[-1][1]))
            if i + 1 < self.n_rooms:  # to the door and into the next room
                y, x = cells[-1]
                cells += [(yy, x) for yy in range(y - 1, DOOR_Y - 1, -1)]
                cells += [(DOOR_Y, xx) for xx in range(x + 1, x0 + ROOM_W + 2)]
        moves = [_move(a, b) for a, b in zip(cells, cells[1:])]
        if len(moves) > self.context_len:
            raise ValueError(f"rooms: the sweep takes {len(moves)} steps, more than the context phase {self.context_len}")
        while len(moves) < self.context_len:
            moves.append(3 if len(moves) % 2 == 0 else 2)  # right, left, right, ... inside the last room
        return moves

    def _build(self, cue: int) -> None:
        rng = np.random.default_rng(cue)
        colours = rng.choice(len(tiles.PALETTE), self.n_rooms, replace=False)
        self.room_colours = tiles.PALETTE[colours]  # (N, 3) uint8
        self._room_tiles = [tiles.solid_id(c) for c in colours]
        height, width = ROOM_H + 2, self.n_rooms * (ROOM_W + 1) + 1
        grid = np.full((height, width), tiles.WALL_ID)
        for i, c in enumerate(colours):
            x0 = self._room_x0(i)
            grid[1 : 1 + ROOM_H, x0 : x0 + ROOM_W] = self._room_tiles[i]
            if i + 1 < self.n_rooms:
                grid[DOOR_Y, x0 + ROOM_W] = tiles.solid_id(tiles.FLOOR_C)
            spots = rng.choice(ROOM_W * ROOM_H, OBJECTS_PER_ROOM, replace=False)
            shapes = rng.integers(len(tiles.SHAPE_NAMES), size=OBJECTS_PER_ROOM)
            others = (c + 1 + rng.integers(len(tiles.PALETTE) - 1, size=OBJECTS_PER_ROOM)) % len(tiles.PALETTE)
            for spot, shape, colour in zip(spots, shapes, others):
                grid[1 + spot // ROOM_W, x0 + spot % ROOM_W] = tiles.sprite_id(tiles.SHAPE_NAMES[shape], colour, c)
        self.world = tiles.TileWorld(grid, grid != tiles.WALL_ID)

    # -------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        drawn_cue = int(self.np_random.integers(2**31))
        self.target_room = int(self.np_random.integers(self.n_rooms))
        self.cue = int(self._cue(options, drawn_cue))
        self._build(self.cue)
        self.pos = (1, 1)
        self.t = 0
        self.rewarded = False
        return self._observe(), self._info()

    def step(self, action):
        if self.t >= 2 * self.context_len:
            raise RuntimeError("rooms: step() after the episode ended; call reset()")
        dy, dx = tiles.MOVES[int(action)]
        y, x = self.pos[0] + dy, self.pos[1] + dx
        if self.world.can_enter(y, x):
            self.pos = (int(y), int(x))
        self.t += 1
        reward = 0.0
        if self.t > self.context_len and not self.rewarded and self._room() == self.target_room:
            reward, self.rewarded = 1.0, True
        truncated = self.t >= 2 * self.context_len
        return self._observe(), reward, False, truncated, self._info()

    def scripted_action(self) -> int:
        if self.t < self.context_len:
            return self.plan[self.t]
        return tiles.INVERSE_MOVE[self.plan[2 * self.context_len - 1 - self.t]]

    # -------------------------------------------------------------- helpers
    def _room(self) -> int:
        return min((self.pos[1] - 1) // (ROOM_W + 1), self.n_rooms - 1)

    def _observe(self) -> dict[str, np.ndarray]:
        hud = np.full(8, tiles.solid_id(tiles.BLACK_C))
        if self.t >= self.context_len:
            hud[0] = tiles.solid_id(tiles.WHITE_C)
            hud[1:3] = self._room_tiles[self.target_room]
        else:
            hud[0] = tiles.solid_id(tiles.GREY_C)
        self._image = self.world.render(*self.pos, hud)
        return {"image": self._image}

    def _info(self) -> dict[str, Any]:
        return {**self._phase_info(), "room": self._room()}


def _move(a: tuple[int, int], b: tuple[int, int]) -> int:
    """The move that takes cell a to the neighbouring cell b."""
    step = (b[0] - a[0], b[1] - a[1])
    return {(-1, 0): 0, (1, 0): 1, (0, -1): 2, (0, 1): 3}[step]
