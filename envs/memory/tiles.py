"""Tile rendering for the memory suite: a grid world drawn as 64x64 RGB by slicing, no per-pixel loops.

The world is an (H, W) array of tile ids into ATLAS, every (8, 8, 3) uint8 sprite built once at import.
The image is one HUD row of 8 tiles on top of a 7x8-tile window of the world around the agent
(the agent sits at window row 3, column 3), i.e. (8 rows x 8 px) x (8 columns x 8 px) = 64x64:

    image = ATLAS[cells].transpose(0, 2, 1, 3, 4).reshape(64, 64, 3)    # cells: (8, 8) tile ids

plus the agent sprite blitted through a boolean mask. Moves are 0 up, 1 down, 2 left, 3 right.
"""

from __future__ import annotations

import numpy as np

TILE = 8
VIEW_ROWS, VIEW_COLS = 7, 8  # world cells in view, below one HUD row
AGENT_ROW, AGENT_COL = 3, 3  # the agent's cell inside the window
PAD = 4  # the world is padded with walls so that every window is a plain slice
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # (dy, dx) for up, down, left, right
INVERSE_MOVE = (1, 0, 3, 2)

# 14 well-separated colours for rooms, keys, cues and landmarks.
PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (170, 110, 40),
        (128, 0, 0),
        (170, 255, 195),
    ],
    np.uint8,
)
WALL = np.array((90, 90, 90), np.uint8)
FLOOR = np.array((20, 20, 20), np.uint8)
BLACK = np.array((0, 0, 0), np.uint8)
WHITE = np.array((255, 255, 255), np.uint8)
GOLD = np.array((255, 200, 0), np.uint8)


def _masks() -> dict[str, np.ndarray]:
    y, x = np.mgrid[0:TILE, 0:TILE] + 0.5
    cy = cx = TILE / 2
    r = np.hypot(y - cy, x - cx)
    return {
        "square": (np.abs(y - cy) < 2.6) & (np.abs(x - cx) < 2.6),
        "circle": r < 3.2,
        "ring": (r < 3.6) & (r > 2.0),
        "cross": (np.abs(y - cy) < 1.1) | (np.abs(x - cx) < 1.1),
        "diamond": np.abs(y - cy) + np.abs(x - cx) < 3.6,
        "triangle": (y > 1.5) & (y < 7) & (np.abs(x - cx) < (y - 1.0) / 1.6),
    }


SHAPES = _masks()
SHAPE_NAMES = tuple(SHAPES)
AGENT_MASK = SHAPES["circle"]
AGENT_COLOUR = WHITE
_AGENT_WHERE = np.repeat(AGENT_MASK[:, :, None], 3, axis=2)  # (8, 8, 3)


def solid(colour: np.ndarray) -> np.ndarray:
    """(8, 8, 3) uint8 tile of one colour."""
    return np.broadcast_to(np.asarray(colour, np.uint8), (TILE, TILE, 3)).copy()


# Every tile any task draws, built once at import (a few thousand small sprites), so that a reset
# only writes tile ids into a grid. Colours are indices into COLOURS: the palette, then these.
GREY_HUD = np.array((60, 60, 60), np.uint8)
COLOURS = np.concatenate([PALETTE, np.stack([FLOOR, BLACK, WHITE, GOLD, GREY_HUD])])  # (19, 3)
FLOOR_C, BLACK_C, WHITE_C, GOLD_C, GREY_C = range(len(PALETTE), len(PALETTE) + 5)
_NC = len(COLOURS)
_SOLID0 = 1
_SPRITE0 = _SOLID0 + _NC
_DOOR0 = _SPRITE0 + len(SHAPES) * _NC * _NC
WALL_ID = 0


def solid_id(colour: int) -> int:
    """The id of the tile of one colour (an index into COLOURS)."""
    return _SOLID0 + int(colour)


def sprite_id(shape: str, colour: int, background: int) -> int:
    """The id of the tile with `shape` in colour `colour` over `background` (indices into COLOURS)."""
    return _SPRITE0 + (SHAPE_NAMES.index(shape) * _NC + int(colour)) * _NC + int(background)


def door_id(colour: int, is_open: bool) -> int:
    """A door in a palette colour: closed (solid, a black handle) or open (a dark doorway in a coloured frame)."""
    return _DOOR0 + 2 * int(colour) + int(bool(is_open))


def _build_atlas() -> np.ndarray:
    wall = solid(WALL)
    wall[::4, :] = WALL // 2  # mortar lines tell walls from plain grey floors
    atlas = [wall] + [solid(c) for c in COLOURS]
    for shape in SHAPE_NAMES:
        for fg in COLOURS:
            for bg in COLOURS:
                tile = solid(bg)
                tile[SHAPES[shape]] = fg
                atlas.append(tile)
    for c in PALETTE:
        closed = solid(c)
        closed[3:5, 5:7] = BLACK  # the handle
        doorway = solid(c)
        doorway[2:, 2:6] = BLACK
        atlas += [closed, doorway]
    return np.stack(atlas)


ATLAS = _build_atlas()  # (K, 8, 8, 3) uint8


class TileWorld:
    """A grid of tile ids (padded with walls), a walkability mask, and the renderer.

    grid: (H, W) int ids into ATLAS; walkable: (H, W) bool. Coordinates (y, x) are unpadded
    world cells; `cells` is the padded array that tasks edit in place (keys taken, doors opened).
    """

    def __init__(self, grid: np.ndarray, walkable: np.ndarray):
        if grid.shape != walkable.shape:
            raise ValueError(f"grid {grid.shape} and walkable {walkable.shape} must have the same shape")
        self.height, self.width = grid.shape
        self.cells = np.zeros((self.height + 2 * PAD, self.width + 2 * PAD), np.intp)  # WALL_ID = 0 around
        self.cells[PAD:-PAD, PAD:-PAD] = grid
        self.walkable = np.zeros(self.cells.shape, bool)
        self.walkable[PAD:-PAD, PAD:-PAD] = walkable

    def set(self, y: int, x: int, tile: int) -> None:
        self.cells[y + PAD, x + PAD] = tile

    def get(self, y: int, x: int) -> int:
        return int(self.cells[y + PAD, x + PAD])

    def can_enter(self, y: int, x: int) -> bool:
        return bool(self.walkable[y + PAD, x + PAD])

    def window(self, y: int, x: int) -> np.ndarray:
        """A writable (7, 8) view of the padded cells around the agent at (y, x)."""
        top, left = y + PAD - AGENT_ROW, x + PAD - AGENT_COL
        return self.cells[top : top + VIEW_ROWS, left : left + VIEW_COLS]

    def in_view(self, y: int, x: int, ty: int, tx: int) -> bool:
        """Whether world cell (ty, tx) is inside the window of an agent at (y, x)."""
        return -AGENT_ROW <= ty - y < VIEW_ROWS - AGENT_ROW and -AGENT_COL <= tx - x < VIEW_COLS - AGENT_COL

    def render(self, y: int, x: int, hud: np.ndarray) -> np.ndarray:
        """(64, 64, 3) uint8: the HUD row (8 tile ids) over the window around (y, x), the agent drawn."""
        ids = np.concatenate([hud[None, :], self.window(y, x)])  # (8, 8)
        image = ATLAS[ids].transpose(0, 2, 1, 3, 4).reshape(64, 64, 3)
        top, left = (1 + AGENT_ROW) * TILE, AGENT_COL * TILE
        np.copyto(image[top : top + TILE, left : left + TILE], AGENT_COLOUR, where=_AGENT_WHERE)
        return image


def path_actions(start: tuple[int, int], goal: tuple[int, int], vertical_first: bool = True) -> list[int]:
    """Moves along an L-shaped path from start to goal (the caller makes sure the cells are free)."""
    (y0, x0), (y1, x1) = start, goal
    vertical = [1 if y1 > y0 else 0] * abs(y1 - y0)
    horizontal = [3 if x1 > x0 else 2] * abs(x1 - x0)
    return vertical + horizontal if vertical_first else horizontal + vertical
