"""Object observations of the built-in games: each frame as a fixed-size float32 vector of what the frame parser
(objects.py) reads off it, the same for a real frame and for one a world model draws.

A vector is a row of sprite slots followed by the game's own parts; `object_fields(env_id)` names every entry.

- A slot is (present, x, y, vx, vy): 1 when a sprite fills it; the centre of its pixels / 63, in [0, 1]; its move
  since the previous frame in pixels / SPEED, clipped to [-1, 1]. A sprite's move is measured from the nearest
  sprite of its kind in the previous frame within SPEED pixels (pairs taken closest first); a sprite with none
  (just appeared, or the stream's first frame) has not moved. Each kind has a fixed number of slots, filled in
  the game's order below and zero where empty; sprites beyond them are left out.
- Catch (76): 8 gem, 6 bomb slots, lowest first (then leftmost); the player; lives / 3. In 50,000 steps of random
  play no frame showed more than 8 gems or 6 bombs.
- Bricks (51): the ball, the paddle; the wall's 40 cells, 1 where a brick stands, row by row from the top left;
  lives / 3.
- Cave (53): the ship; 4 coin slots, leftmost first (at most 4 fit on screen, 20 columns apart); the gap ahead
  of the ship in 14 blocks of 4 columns (columns 8..63): each block's first open row (its lowest ceiling), then
  each block's last open row (its highest floor), / 63.

The score is left out: no game plays differently with it, and the reward reports its changes. The moves are in
because one frame does not say where a sprite goes: a Bricks ball at the same place may rise or fall and drift
either way, a Catch item falls 1 or 2 px a step. A linear fit of the ball's next position errs by about 1 px
from one frame's entries and by 0.17 px with the moves (docs/experiments.md, "Object observations").
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from . import bricks, cave
from ._base import SIZE
from .objects import parse, read_gap
from .sprites import FrameObjects, Sprite

SPEED = 4.0
"""Move in pixels per step that reads as 1; also the farthest a sprite may move between frames and be matched."""
SLOT = ("present", "x", "y", "vx", "vy")
"""The entries of one sprite slot."""
GAP_BLOCK = 4
"""Cave: columns per block of the gap."""


@dataclass(frozen=True)
class Layout:
    """What a game's object vector holds, in order: sprite slots, the wall's cells, the gap's blocks, lives."""

    slots: tuple[tuple[str, int], ...]  # (kind, number of slots)
    leftmost_first: bool = False  # fill slots leftmost first; else lowest first
    cells: int = 0  # Bricks: the wall's cells
    gap_blocks: int = 0  # Cave: blocks of GAP_BLOCK columns from the ship's column on
    lives: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        """A name for each entry of the vector: "gem0.x", "brick.r0c7", "gap3.top", "lives", ..."""
        names = [f"{kind}{i}.{entry}" for kind, count in self.slots for i in range(count) for entry in SLOT]
        names += [f"brick.r{i // bricks.BRICK_COLS}c{i % bricks.BRICK_COLS}" for i in range(self.cells)]
        names += [f"gap{i}.{end}" for end in ("top", "bottom") for i in range(self.gap_blocks)]
        return tuple(names + ["lives"] * self.lives)


LAYOUTS: dict[str, Layout] = {
    "Catch": Layout((("gem", 8), ("bomb", 6), ("player", 1)), lives=True),
    "Bricks": Layout((("ball", 1), ("paddle", 1)), cells=bricks.BRICK_ROWS * bricks.BRICK_COLS, lives=True),
    "Cave": Layout((("ship", 1), ("coin", 4)), leftmost_first=True, gap_blocks=(SIZE - cave.SHIP_X) // GAP_BLOCK),
}
"""Game name -> the layout of its object vector."""


def game_of(env_id: str) -> str:
    """The built-in game an env id names ("Catch", "Catch-v0" or "dreamworld/Catch-v0" -> "Catch"), or a
    ValueError saying which envs have object observations."""
    name = env_id.removeprefix("dreamworld/").removesuffix("-v0")
    if name not in LAYOUTS or env_id not in (name, f"{name}-v0", f"dreamworld/{name}-v0"):
        ids = ", ".join(f"dreamworld/{game}-v0" for game in LAYOUTS)
        raise ValueError(f"{env_id!r} has no frame parser, so no object observations: they exist for the built-in "
                         f"games ({ids}); observe pixels (obs_type 'pixels') or a world model's codes ('latent')")
    return name


def object_fields(env_id: str) -> tuple[str, ...]:
    """The name of each entry of the game's object vector."""
    return LAYOUTS[game_of(env_id)].fields


def object_space(env_id: str) -> gym.spaces.Box:
    """The space of the game's object vectors: float32 (size,), moves in [-1, 1], everything else in [0, 1]."""
    moving = np.array([name.endswith((".vx", ".vy")) for name in object_fields(env_id)])
    return gym.spaces.Box(np.where(moving, -1.0, 0.0).astype(np.float32), np.ones(len(moving), np.float32),
                          dtype=np.float32)


def _moves(now: list[Sprite], before: list[Sprite]) -> np.ndarray:
    """(len(now), 2) move of each sprite from its match in `before`: pairs within SPEED px, closest first."""
    moves = np.zeros((len(now), 2))
    if not now or not before:
        return moves
    d = np.array([(s.x, s.y) for s in now])[:, None] - np.array([(s.x, s.y) for s in before])  # (n, m, 2)
    dist = np.hypot(d[..., 0], d[..., 1])  # (n, m)
    matched_now, matched_before = set(), set()
    for flat in np.argsort(dist, axis=None, kind="stable").tolist():
        i, j = divmod(flat, len(before))
        if dist[i, j] > SPEED:
            break
        if i not in matched_now and j not in matched_before:
            matched_now.add(i)
            matched_before.add(j)
            moves[i] = d[i, j]
    return moves


def object_vector(env_id: str, objects: FrameObjects, previous: FrameObjects | None = None,
                  gap: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The object vector (size,) float32 of a frame's `objects`, with moves from the `previous` frame's objects
    (None: no moves); Cave also needs the frame's `gap` (`objects.read_gap` or `Cave.true_gap`)."""
    layout = LAYOUTS[game_of(env_id)]
    parts = []
    for kind, count in layout.slots:
        now = [s for s in objects.sprites if s.kind == kind]
        now = sorted(now, key=(lambda s: (s.x, s.y)) if layout.leftmost_first else (lambda s: (-s.y, s.x)))[:count]
        slots = np.zeros((count, len(SLOT)))  # (count, 5)
        if now:
            before = [] if previous is None else [s for s in previous.sprites if s.kind == kind]
            slots[:len(now), 0] = 1.0
            slots[:len(now), 1:3] = np.array([(s.x, s.y) for s in now]) / (SIZE - 1)
            slots[:len(now), 3:] = np.clip(_moves(now, before) / SPEED, -1.0, 1.0)
        parts.append(slots.reshape(-1))  # (count * 5,)
    if layout.cells:
        wall = np.zeros(layout.cells)
        for s in objects.sprites:
            if s.kind == "brick":
                col = round((s.x - (bricks.BRICK_W - 1) / 2) / (bricks.BRICK_W + 1))
                row = round((s.y - bricks.BRICKS_TOP - (bricks.BRICK_H - 1) / 2) / (bricks.BRICK_H + 1))
                if 0 <= row < bricks.BRICK_ROWS and 0 <= col < bricks.BRICK_COLS:
                    wall[row * bricks.BRICK_COLS + col] = 1.0
        parts.append(wall)
    if layout.gap_blocks:
        if gap is None:
            raise ValueError("Cave's object vector needs the frame's gap: pass gap=objects.read_gap(frame)")
        top, bottom = (np.asarray(g[cave.SHIP_X:]).reshape(layout.gap_blocks, GAP_BLOCK) for g in gap)  # (B, 4)
        rows = np.concatenate([top.max(1), bottom.min(1) - 1])  # (2B,) first and last open row of each block
        parts.append(np.clip(rows, 0, SIZE - 1) / (SIZE - 1))
    if layout.lives:
        parts.append([(objects.lives or 0) / 3])
    return np.concatenate(parts).astype(np.float32)


class ObjectEncoder:
    """Frames of a built-in game -> object vectors, for `num_envs` streams of frames at once. Each stream
    remembers its last frame's objects, from which the next frame's moves are measured."""

    def __init__(self, env_id: str, num_envs: int = 1):
        self.game = game_of(env_id)
        self.space = object_space(self.game)
        self.num_envs = num_envs
        self._gap = LAYOUTS[self.game].gap_blocks > 0
        self._previous: list[FrameObjects | None] = [None] * num_envs
        self._last = np.zeros((num_envs, *self.space.shape), np.float32)  # (num_envs, size)

    def reset(self, rows=None, previous: np.ndarray | None = None) -> None:
        """Start new streams in `rows` (default: all): their next frame shows no moves, or, with `previous`
        (len(rows), 64, 64, 3) uint8, the moves since those frames."""
        rows = range(self.num_envs) if rows is None else [int(r) for r in rows]
        for i, r in enumerate(rows):
            self._previous[r] = None if previous is None else parse(self.game, previous[i])

    def __call__(self, frames: np.ndarray, rows=None) -> np.ndarray:
        """Read `frames` (len(rows), 64, 64, 3) uint8 as the next frames of `rows` (default: all); returns the
        vectors (num_envs, size) of every stream, the other rows' as they were."""
        rows = range(self.num_envs) if rows is None else [int(r) for r in rows]
        if len(frames) != len(rows):
            raise ValueError(f"{len(frames)} frames for {len(rows)} streams: pass one frame per stream")
        for frame, r in zip(frames, rows, strict=True):
            objects = parse(self.game, frame)
            gap = read_gap(frame) if self._gap else None
            self._last[r] = object_vector(self.game, objects, self._previous[r], gap)
            self._previous[r] = objects
        return self._last.copy()


class ObjectObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A built-in game (`make_env("Catch")`) observed through object vectors read off the frames it emits, as a
    dream with obs_type="objects" observes them. `env_id` (default: the env's spec id) names the game."""

    def __init__(self, env: gym.Env, env_id: str | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, env_id=env_id)
        gym.Wrapper.__init__(self, env)
        env_id = env_id or (env.spec.id if env.spec is not None else type(env.unwrapped).__name__)
        self.encoder = ObjectEncoder(env_id)
        if env.observation_space.shape != (SIZE, SIZE, 3):
            raise ValueError(f"object observations read {SIZE}x{SIZE} frames, {env_id} emits "
                             f"{env.observation_space.shape}: make the game with its default size")
        self.observation_space = self.encoder.space

    def reset(self, **kwargs):
        """Reset the game; the first vector shows no moves."""
        frame, info = self.env.reset(**kwargs)
        self.encoder.reset()
        return self.encoder(frame[None])[0], info

    def step(self, action):
        """Step the game and read its frame."""
        frame, reward, terminated, truncated, info = self.env.step(action)
        return self.encoder(frame[None])[0], reward, terminated, truncated, info
