"""Parse a frame of a built-in game into its sprites and its HUD (score, lives), from the colours alone.

Each play-area pixel takes the nearest colour of the game's palette (sprites and scenery) when it lies within
`TOLERANCE` of it (Euclidean distance in RGB), and no colour otherwise: a frame drawn by a world model, colours
off by some tens of levels, still parses, while a sprite drawn as a dim smear (its colour half mixed with the
background) does not. A sprite of a kind drawn in an h x w box is a box of that size holding at least half the
kind's pixel count in its colours; boxes may hang off the frame, so a sprite half visible at an edge counts,
and bricks are looked for only in the wall's fixed cells. Where found boxes overlap, the one with more such
pixels wins, then the upper-left one, so two touching sprites of one kind are two sprites. A sprite's centre is
that of the bounding box of its pixels (of its cell, for bricks). The HUD rows 0..6 are never play area: their
pixels take the nearest of the HUD's colours, the score is read cell by cell against the 3x5 font and the lives
are counted as blocks. Colours are looked up in tables of 64 levels a channel; 0.1 to 0.3 ms a frame. `read_gap`
reads Cave's walls, column by column.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import bricks, catch, cave
from ._base import BACKGROUND, DIGITS, HUD_HEIGHT, HUD_TEXT, LIFE, SIZE
from .sprites import FrameObjects, Sprite

TOLERANCE = 80.0
"""Largest RGB distance from a palette colour at which a play-area pixel still takes that colour: 46 levels a
channel; any sprite colour mixed half and half with the background lies over 100 away from it."""
DIGIT_MISMATCHES = 1
"""Most pixels of a 3x5 HUD cell that may differ from the one digit it is closest to."""
MAX_DIGITS = 12
"""Score digits read at most: cells 1 + 4i, left of the life blocks."""
MAX_LIVES = 3
"""Life blocks looked for, right to left."""
_TEXT, _LIFE = 0, 1  # labels of the HUD's colours


@dataclass(frozen=True)
class _Look:
    """How one kind of sprite is drawn: its colours, its box, its pixel count, and the cells it may sit in
    (top-left (x, y) of each; None: anywhere in the play area)."""

    kind: str
    colors: tuple[np.ndarray, ...]
    h: int
    w: int
    pixels: int
    cells: tuple[tuple[int, int], ...] | None = None

    @property
    def min_pixels(self) -> int:
        """Fewest pixels of its colours that its box must hold: half its pixel count, rounded up."""
        return (self.pixels + 1) // 2

    @functools.cached_property
    def cell_sprites(self) -> tuple[Sprite, ...]:
        """The sprite each cell would show."""
        return tuple(Sprite.from_box(self.kind, x, y, self.w, self.h) for x, y in self.cells)

    @functools.cached_property
    def cell_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Each cell's box in `_box_counts` of the play area: rows, columns (cells,)."""
        x, y = np.array(self.cells).T  # each (cells,)
        return y - HUD_HEIGHT + self.h - 1, x + self.w - 1


@dataclass(frozen=True)
class _Game:
    """What the parser knows of a game: its sprites, the other colours of its play area, whether it has lives."""

    looks: tuple[_Look, ...]
    scenery: tuple[np.ndarray, ...]
    lives: bool

    @functools.cached_property
    def table(self) -> np.ndarray:
        """`_color_table` of the play area: the index in `looks` of the kind a colour belongs to, -1 for none."""
        colors = [c for look in self.looks for c in look.colors] + list(self.scenery)
        labels = [i for i, look in enumerate(self.looks) for _ in look.colors] + [-1] * len(self.scenery)
        return _color_table(colors, labels)


def _color_table(colors: list[np.ndarray], labels: list[int], tolerance: float = TOLERANCE) -> np.ndarray:
    """(64**3,) int8 lookup by `_color_keys`: the label of the colour nearest to each colour (rounded to 4 levels a
    channel, taken at the middle of its bin) when it lies within `tolerance`, else -1."""
    levels = np.arange(0, 256, 4) + 1.5  # (64,) middle of each bin
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)  # (64**3, 3) r, g, b
    best = np.full(len(grid), tolerance**2)
    table = np.full(len(grid), -1, dtype=np.int8)
    for color, label in zip(colors, labels, strict=True):
        d2 = ((grid - color) ** 2).sum(1)  # (64**3,)
        closer = d2 < best
        best[closer], table[closer] = d2[closer], label
    return table


def _color_keys(frame: np.ndarray) -> np.ndarray:
    """(H, W) index of each pixel's colour rounded to 4 levels a channel, for `_color_table`s."""
    q = (frame >> 2).astype(np.int32)  # (H, W, 3) in 0..63
    return (q[..., 0] << 12) | (q[..., 1] << 6) | q[..., 2]


@functools.cache
def _hud_table() -> np.ndarray:
    """`_color_table` of the HUD: _TEXT, _LIFE or -1 (background), by the nearest of the three, however far: the
    1 px strokes of the digits are what a blur dims first."""
    return _color_table([HUD_TEXT, LIFE, BACKGROUND], [_TEXT, _LIFE, -1], tolerance=np.inf)


@functools.cache
def _digit_table() -> np.ndarray:
    """(2**15,) the digit a 3x5 cell reads as, by its pixels as bits (row-major, first pixel lowest): the one digit
    that differs least from it, in at most DIGIT_MISMATCHES pixels; -1 when there is none or several."""
    cells = (np.arange(2**15)[:, None] >> np.arange(15)) & 1  # (2**15, 15)
    mismatches = (cells[:, None, :] != DIGITS.reshape(10, 15)).sum(-1)  # (2**15, 10)
    best = mismatches.min(1)
    unique = (mismatches == best[:, None]).sum(1) == 1
    return np.where(unique & (best <= DIGIT_MISMATCHES), mismatches.argmin(1), -1)


def _square(kind: str, color: np.ndarray, size: int) -> _Look:
    """A kind drawn as a size x size square of one colour."""
    return _Look(kind, (color,), size, size, size * size)


_BRICK_CELLS = tuple(
    (col * (bricks.BRICK_W + 1), bricks.BRICKS_TOP + row * (bricks.BRICK_H + 1))
    for row in range(bricks.BRICK_ROWS)
    for col in range(bricks.BRICK_COLS)
)
_GAMES = {
    "Catch": _Game(
        looks=(
            _square("gem", catch.ITEM_COLORS[catch.GEM], catch.ITEM_SIZE[catch.GEM]),
            _square("bomb", catch.ITEM_COLORS[catch.BOMB], catch.ITEM_SIZE[catch.BOMB]),
            _Look("player", (catch.PLAYER,), catch.PLAYER_H, catch.PLAYER_W, catch.PLAYER_H * catch.PLAYER_W),
        ),
        scenery=(BACKGROUND, catch.FLOOR),
        lives=True,
    ),
    "Bricks": _Game(
        looks=(
            _square("ball", bricks.BALL_COLOR, bricks.BALL),
            _Look("paddle", (bricks.PADDLE,), bricks.PADDLE_H, bricks.PADDLE_W, bricks.PADDLE_H * bricks.PADDLE_W),
            _Look("brick", bricks.ROW_COLORS, bricks.BRICK_H, bricks.BRICK_W, bricks.BRICK_H * bricks.BRICK_W,
                  _BRICK_CELLS),
        ),
        scenery=(BACKGROUND, bricks.CEILING),
        lives=True,
    ),
    "Cave": _Game(
        looks=(
            _Look("ship", (cave.SHIP,), cave.SHIP_H, cave.SHIP_W, int(cave.SHIP_MASK.sum())),
            _square("coin", cave.COIN_COLOR, cave.COIN),
        ),
        scenery=(BACKGROUND, *cave.ROCK, cave.SPECK, cave.EDGE),
        lives=False,
    ),
}

KINDS: dict[str, tuple[str, ...]] = {name: tuple(look.kind for look in g.looks) for name, g in _GAMES.items()}
"""Game name -> the sprite kinds its parser reports."""


def _box_counts(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pixels set in every h x w box over `mask` (H, W), boxes hanging off its edges included.

    counts[i, j] is the box with top-left (i - h + 1, j - w + 1); shape (H + h - 1, W + w - 1).
    """
    H, W = mask.shape
    padded = np.zeros((H + 2 * h - 2, W + 2 * w - 2), dtype=np.int16)  # (H + 2h - 2, W + 2w - 2)
    padded[h - 1:h - 1 + H, w - 1:w - 1 + W] = mask
    rows = sum(padded[i:i + H + h - 1] for i in range(h))  # (H + h - 1, W + 2w - 2): sums of h rows
    return sum(rows[:, j:j + W + w - 1] for j in range(w))  # (H + h - 1, W + w - 1)


def _pick_boxes(counts: np.ndarray, h: int, w: int, min_pixels: int) -> list[tuple[int, int]]:
    """Greedy non-overlapping boxes (indices into counts) holding >= min_pixels, fullest then upper-left first."""
    ys, xs = np.nonzero(counts >= min_pixels)
    order = np.argsort(-counts[ys, xs], kind="stable")  # nonzero lists them in raster order
    chosen: list[tuple[int, int]] = []
    for y, x in zip(ys[order].tolist(), xs[order].tolist(), strict=True):
        if all(abs(y - cy) >= h or abs(x - cx) >= w for cy, cx in chosen):
            chosen.append((y, x))
    return chosen


def _free_sprites(mask: np.ndarray, look: _Look) -> list[Sprite]:
    """Sprites of a kind that may be anywhere in the play area, from `mask` (57, 64): its pixels of their colours."""
    h, w = look.h, look.w
    if np.count_nonzero(mask) < look.min_pixels:
        return []
    sprites = []
    for i, j in _pick_boxes(_box_counts(mask, h, w), h, w, look.min_pixels):
        y0, x0 = max(i - h + 1, 0), max(j - w + 1, 0)
        ys, xs = np.nonzero(mask[y0:i + 1, x0:j + 1])  # the box's part inside the play area
        y = HUD_HEIGHT + y0 + (ys.min() + ys.max()) / 2
        sprites.append(Sprite(look.kind, float(x0 + (xs.min() + xs.max()) / 2), float(y)))
    return sprites


def _cell_sprites(mask: np.ndarray, look: _Look) -> list[Sprite]:
    """Sprites of a kind that sits in fixed cells, from `mask` (57, 64), each centred on its cell."""
    present = _box_counts(mask, look.h, look.w)[look.cell_index] >= look.min_pixels  # (cells,)
    return [sprite for sprite, on in zip(look.cell_sprites, present.tolist(), strict=True) if on]


def _read_score(text: np.ndarray) -> int | None:
    """The number written in the 3x5 font at (1, 1) of the HUD's text mask (7, 64); None if unreadable."""
    cells = text[1:6, 1:1 + 4 * MAX_DIGITS].reshape(5, MAX_DIGITS, 4)[:, :, :3].transpose(1, 0, 2)  # (D, 5, 3)
    codes = cells.reshape(MAX_DIGITS, 15) @ (1 << np.arange(15))  # (D,) each cell's pixels as bits
    digits = []
    for code in codes.tolist():
        if code == 0:  # the number ends at the first empty cell
            break
        digits.append(int(_digit_table()[code]))
    if not digits or min(digits) < 0:
        return None
    return int("".join(map(str, digits)))


def _count_lives(life: np.ndarray) -> int:
    """Life blocks at the HUD's right (3x3, 4 px apart from column SIZE - 4 leftwards) at least half drawn, from
    the HUD's life mask (7, 64)."""
    blocks = life[2:5, SIZE - 4 * MAX_LIVES:SIZE].reshape(3, MAX_LIVES, 4)[:, :, :3]  # (3, lives, 3), left to right
    return int((blocks.sum(axis=(0, 2)) >= 5).sum())


def parse(game: str, frame: np.ndarray) -> FrameObjects:
    """The sprites, score and lives shown by a (64, 64, 3) uint8 frame of the game named `game` ("Catch", ...)."""
    if frame.shape != (SIZE, SIZE, 3):
        raise ValueError(f"expected a ({SIZE}, {SIZE}, 3) frame, got {frame.shape}")
    spec = _GAMES[game]
    keys = _color_keys(frame)  # (64, 64)
    kinds = spec.table[keys[HUD_HEIGHT:]]  # (57, 64) index into spec.looks, -1: none
    sprites = []
    for i, look in enumerate(spec.looks):
        find = _free_sprites if look.cells is None else _cell_sprites
        sprites += find(kinds == i, look)
    hud = _hud_table()[keys[:HUD_HEIGHT]]  # (7, 64)
    return FrameObjects(sprites, _read_score(hud == _TEXT), _count_lives(hud == _LIFE) if spec.lives else None)


@functools.cache
def _wall_table() -> np.ndarray:
    """`_color_table` of Cave's wall: 0 for its rock shades, specks and edge line, -1 for anything else."""
    colors = [*cave.ROCK, cave.SPECK, cave.EDGE]
    return _color_table(colors, [0] * len(colors))


def read_gap(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cave's open rows in each column of a (64, 64, 3) uint8 frame, as `Cave.true_gap` gives them: the first row
    below the ceiling's wall and the first wall row below the gap, int64 (64,) each. The wall is read as the runs of
    wall-coloured pixels down from the HUD and up from the bottom, so stray pixels inside the gap do not count."""
    wall = _wall_table()[_color_keys(frame[HUD_HEIGHT:])] == 0  # (57, 64)
    rows = len(wall)
    above = np.where(wall.all(0), rows, np.argmin(wall, axis=0))  # (64,) wall rows down from the HUD
    below = np.where(wall.all(0), rows, np.argmin(wall[::-1], axis=0))  # (64,) wall rows up from the bottom
    return HUD_HEIGHT + above, SIZE - below


def parser(env_id: str) -> Callable[[np.ndarray], FrameObjects] | None:
    """frame -> FrameObjects for a built-in game's env id ("dreamworld/Catch-v0" or "Catch"); None for others."""
    name = env_id.removeprefix("dreamworld/").removesuffix("-v0")
    if name not in _GAMES or env_id not in (name, f"dreamworld/{name}-v0"):
        return None
    return functools.partial(parse, name)
