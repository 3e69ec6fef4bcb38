"""Frame-reading heuristic policies of the built-in games: a frame (uint8 64x64x3, real or drawn by a world model)
-> an action, from what `objects.parse` finds in it (and, for Cave, the open rows of the cave ahead of the ship).

They are far from optimal, but clearly better than random play, and they see only the frame: the same policy can
play the real game and a dream of it, so a dream can be checked in closed loop (dreamworld.evaluate.calibration). They
keep no state, so one function serves every row of a batch (callers loop over the rows).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import bricks, catch, cave
from ._base import BACKGROUND, SIZE, move_table, plan_first_move
from .objects import parse
from .sprites import FrameObjects, Sprite

Decide = Callable[[np.ndarray, FrameObjects], int]
"""(frame, its parsed objects) -> action."""

CATCH_HORIZON, CATCH_BOMB = 30, -100.0
"""Steps the Catch heuristic plans ahead; what touching a bomb is worth to it (a gem is worth 1)."""
CAVE_LOOKAHEAD = (4, 7)
"""Columns ahead of the ship's nose whose gap the ship steers into (from, to)."""
CAVE_OPEN_DISTANCE = 60.0
"""Largest RGB distance from the background colour at which a cave pixel counts as open."""
_CATCH_MOVES = move_table(SIZE - catch.PLAYER_W + 1, (0, -catch.PLAYER_SPEED, catch.PLAYER_SPEED))  # NOOP, LEFT, RIGHT


def _first(objects: FrameObjects, kind: str) -> Sprite | None:
    """The first sprite of `kind`, or None."""
    return next((s for s in objects.sprites if s.kind == kind), None)


def _catch_rewards(objects: FrameObjects) -> np.ndarray:
    """(CATCH_HORIZON, positions) what being at each catcher position (its left column) after t + 1 steps is worth:
    +1 split between the two times a gem may land (it falls 1 or 2 rows a step, the frame does not say which),
    CATCH_BOMB for every time and place a bomb may touch the catcher (one column of margin)."""
    rewards = np.zeros((CATCH_HORIZON, SIZE - catch.PLAYER_W + 1))
    for sprite in objects.sprites:
        if sprite.kind not in ("gem", "bomb"):
            continue
        kind = catch.GEM if sprite.kind == "gem" else catch.BOMB
        size, margin = catch.ITEM_SIZE[kind], 0 if kind == catch.GEM else 1
        x, y = round(sprite.x - (size - 1) / 2), round(sprite.y - (size - 1) / 2)  # top-left corner
        columns = slice(max(x - catch.PLAYER_W + 1 - margin, 0), max(x + size + margin, 0))
        for speed in (1, 2):
            first = max((catch.PLAYER_Y - size - y) // speed + 1, 1)
            last = min((catch.PLAYER_Y + catch.PLAYER_H - 1 - y) // speed, CATCH_HORIZON)
            if first <= last:
                rewards[first - 1:last, columns] += 0.5 if kind == catch.GEM else CATCH_BOMB
    return rewards


def catch_action(frame: np.ndarray, objects: FrameObjects) -> int:
    """Catch: plan the catcher's moves over the next steps from the gems and bombs on screen (dynamic programming,
    as the game's scripted player does with the true state): go for the gems it can reach, the lowest first, and
    away from a bomb about to land on it; else stay."""
    player = _first(objects, "player")
    if player is None:
        return catch.Catch.NOOP
    start = min(max(round(player.x - (catch.PLAYER_W - 1) / 2), 0), SIZE - catch.PLAYER_W)
    return plan_first_move(_catch_rewards(objects), start, _CATCH_MOVES)


def _bricks_aim(ball: Sprite, bricks_left: list[Sprite]) -> float:
    """Where the paddle's centre should meet the ball: two columns beside it, so that the bounce sends the ball
    towards the middle of the bricks left (to the left when they lie left of the ball)."""
    target = np.mean([b.x for b in bricks_left]) if bricks_left else SIZE / 2
    return ball.x + (2.0 if target < ball.x else -2.0)


def bricks_action(frame: np.ndarray, objects: FrameObjects) -> int:
    """Bricks: FIRE when no ball is seen or it sits on the paddle's centre, else move the paddle's centre towards
    the ball's column (meeting it a little off centre, to steer it towards the bricks left)."""
    ball, paddle = _first(objects, "ball"), _first(objects, "paddle")
    if paddle is None:
        return bricks.Bricks.NOOP
    if ball is None:
        return bricks.Bricks.FIRE
    resting_y = bricks.PADDLE_Y - bricks.BALL / 2 - 0.5  # the ball's centre row while it waits on the paddle
    if abs(ball.y - resting_y) < 1 and abs(ball.x - paddle.x) < 1:
        return bricks.Bricks.FIRE
    wanted = _bricks_aim(ball, [s for s in objects.sprites if s.kind == "brick"])
    if wanted < paddle.x - bricks.PADDLE_SPEED / 2:
        return bricks.Bricks.LEFT
    if wanted > paddle.x + bricks.PADDLE_SPEED / 2:
        return bricks.Bricks.RIGHT
    return bricks.Bricks.NOOP


def cave_gap_centre(frame: np.ndarray) -> float | None:
    """The centre row of the cave's gap a few columns ahead of the ship: the median of the background-coloured
    rows of those columns (None when no row is open)."""
    first = cave.SHIP_X + cave.SHIP_W + CAVE_LOOKAHEAD[0]
    columns = frame[cave.CAVE_TOP:, first:cave.SHIP_X + cave.SHIP_W + CAVE_LOOKAHEAD[1]].astype(np.float32)
    distance2 = ((columns - BACKGROUND.astype(np.float32)) ** 2).sum(-1)  # (rows, columns)
    rows, _ = np.nonzero(distance2 < CAVE_OPEN_DISTANCE**2)
    if len(rows) == 0:
        return None
    return float(np.median(rows)) + cave.CAVE_TOP


def cave_action(frame: np.ndarray, objects: FrameObjects) -> int:
    """Cave: steer the ship towards the centre of the gap ahead."""
    ship = _first(objects, "ship")
    centre = cave_gap_centre(frame)
    if ship is None or centre is None:
        return cave.Cave.NOOP
    if centre < ship.y - cave.SHIP_SPEED / 2:
        return cave.Cave.UP
    if centre > ship.y + cave.SHIP_SPEED / 2:
        return cave.Cave.DOWN
    return cave.Cave.NOOP


DECIDE: dict[str, Decide] = {"Catch": catch_action, "Bricks": bricks_action, "Cave": cave_action}
"""Game name -> its heuristic on (frame, parsed objects)."""


def game_name(env_id: str) -> str | None:
    """The built-in game an env id names ("dreamworld/Catch-v0", "Catch-v0" or "Catch" -> "Catch"), or None."""
    name = env_id.removeprefix("dreamworld/").removesuffix("-v0")
    return name if name in DECIDE and env_id in (name, f"{name}-v0", f"dreamworld/{name}-v0") else None


def decider(env_id: str) -> tuple[str, Decide] | None:
    """(game name, its heuristic on (frame, parsed objects)) for `env_id`, or None for games without one: for
    callers that parse each frame anyway."""
    name = game_name(env_id)
    return None if name is None else (name, DECIDE[name])


def heuristic(env_id: str) -> Callable[[np.ndarray], int] | None:
    """frame uint8 (64, 64, 3) -> action of the heuristic policy of `env_id` (a built-in game), or None for games
    without one."""
    found = decider(env_id)
    if found is None:
        return None
    name, decide = found

    def act(frame: np.ndarray) -> int:
        return decide(frame, parse(name, frame))

    act.__doc__ = f"The {name} heuristic's action for one frame."
    return act
