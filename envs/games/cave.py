"""Cave: a side-scrolling cave flyer; the whole view moves one pixel left every step."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.lib.stride_tricks import sliding_window_view

from ._base import BACKGROUND, HUD_HEIGHT, SIZE, PixelGame, draw_hud, move_table, plan_first_move, rgb
from .sprites import FrameObjects

CAVE_TOP = HUD_HEIGHT  # rows CAVE_TOP..63 scroll; the HUD above stays put
SHIP_X, SHIP_W, SHIP_H, SHIP_SPEED = 8, 5, 3, 2
SHIP_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)
COIN = 2  # coins are COIN x COIN pixels
START_GAP, MIN_GAP, NARROW_EVERY = 32, 15, 60  # the gap narrows by 1 px every NARROW_EVERY columns
COIN_CHANCE, COIN_SPACING = 0.05, 20  # chance per new column, minimum columns between coins
MAX_SLOPE = 0.7  # most rows the gap's centre moves per column
PLAN_HORIZON, CRASH_PENALTY = 40, -100.0

ROCK = np.array([rgb(120, 70, 40), rgb(150, 95, 50), rgb(95, 55, 35)])  # three shades, in diagonal bands
SPECK = rgb(190, 140, 80)
EDGE = rgb(70, 200, 90)
SHIP = rgb(80, 170, 255)
COIN_COLOR = rgb(255, 215, 0)


class Cave(PixelGame):
    """Fly a ship through an endless, narrowing cave that scrolls left; pick up 2x2 coins.

    Actions: 0 noop, 1 up, 2 down (2 px per step). Reward +1 per coin. Touching the textured cave wall
    terminates the episode. Info: score, distance (columns flown), gap (current cave height).
    """

    NOOP, UP, DOWN = range(3)
    KEYS = {"w": UP, "s": DOWN}

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode)
        self.action_space = spaces.Discrete(3)
        self._rows = np.arange(CAVE_TOP, SIZE)[:, None]  # (57, 1) row numbers of the scrolling area
        self._rock = np.zeros((SIZE - CAVE_TOP, SIZE, 3), dtype=np.uint8)  # wall texture, scrolls along
        self._top = np.zeros(SIZE, dtype=np.int64)  # first open row of each column
        self._bottom = np.zeros(SIZE, dtype=np.int64)  # first wall row below the gap
        self._moves = move_table(SIZE, (0, -SHIP_SPEED, SHIP_SPEED))

    def _new_game(self) -> None:
        self.score, self.distance = 0, 0
        self.coins: list[list[int]] = []  # [x, y] of each coin on screen
        self._center, self._slope, self._gap = (CAVE_TOP + SIZE) / 2, 0.0, START_GAP
        self._since_coin = 0
        for x in range(SIZE):
            self._top[x], self._bottom[x] = self._next_gap()
            self._rock[:, x] = self._rock_column(x)
        self.ship_y = int(self._top[SHIP_X] + self._bottom[SHIP_X] - SHIP_H) // 2
        draw_hud(self.frame, self.score)

    def _next_gap(self) -> tuple[int, int]:
        """Extend the cave by one column: the gap's centre drifts with a randomly changing slope."""
        self._gap = max(MIN_GAP, START_GAP - self.distance // NARROW_EVERY)
        slope = self._slope + self.np_random.uniform(-MAX_SLOPE / 4, MAX_SLOPE / 4)
        self._slope = min(max(slope, -MAX_SLOPE), MAX_SLOPE)
        low, high = CAVE_TOP + 1 + self._gap / 2, SIZE - 2 - self._gap / 2
        self._center += self._slope
        if not low <= self._center <= high:
            self._center = min(max(self._center, low), high)
            self._slope = -self._slope
        top = int(round(self._center - self._gap / 2))
        return top, top + self._gap

    def _rock_column(self, world_x: int) -> np.ndarray:
        """Texture of one wall column: diagonal bands of three shades with random specks."""
        column = ROCK[((self._rows[:, 0] + world_x) // 3) % 3]
        column[self.np_random.random(len(column)) < 0.08] = SPECK
        return column

    def _scroll(self) -> None:
        """Move the cave, its texture and the coins one pixel left and add a new column at the right."""
        self.distance += 1
        self._top[:-1], self._bottom[:-1] = self._top[1:], self._bottom[1:]
        self._top[-1], self._bottom[-1] = self._next_gap()
        self._rock[:, :-1] = self._rock[:, 1:]
        self._rock[:, -1] = self._rock_column(self.distance + SIZE - 1)
        for coin in self.coins:
            coin[0] -= 1
        self.coins = [c for c in self.coins if c[0] > -COIN]
        self._since_coin += 1
        if self._since_coin >= COIN_SPACING and self.np_random.random() < COIN_CHANCE:
            self._since_coin = 0
            y = int(self.np_random.integers(self._top[-1] + 2, self._bottom[-1] - COIN - 1))
            self.coins.append([SIZE - COIN, y])

    def _update(self, action: int) -> tuple[float, bool]:
        self._scroll()
        if action == self.UP:
            self.ship_y -= SHIP_SPEED
        elif action == self.DOWN:
            self.ship_y += SHIP_SPEED
        self.ship_y = min(max(self.ship_y, CAVE_TOP), SIZE - SHIP_H)
        y = self.ship_y
        caught = [
            c for c in self.coins if SHIP_X - COIN < c[0] < SHIP_X + SHIP_W and y - COIN < c[1] < y + SHIP_H
        ]
        if caught:
            self.coins = [c for c in self.coins if c not in caught]
            self.score += len(caught)
            draw_hud(self.frame, self.score)
        span = slice(SHIP_X, SHIP_X + SHIP_W)
        crashed = bool(self._top[span].max() > y or self._bottom[span].min() < y + SHIP_H)
        return float(len(caught)), crashed

    def _draw(self) -> None:
        view = self.frame[CAVE_TOP:]
        view[:] = self._rock
        gap = (self._rows >= self._top) & (self._rows < self._bottom)  # (57, 64)
        np.copyto(view, BACKGROUND, where=gap[:, :, None])
        columns = np.arange(SIZE)
        view[self._top - 1 - CAVE_TOP, columns] = EDGE  # the wall's surface, above and below the gap
        view[self._bottom - CAVE_TOP, columns] = EDGE
        for x, y in self.coins:
            view[y - CAVE_TOP:y - CAVE_TOP + COIN, max(x, 0):x + COIN] = COIN_COLOR
        y = self.ship_y - CAVE_TOP
        view[y:y + SHIP_H, SHIP_X:SHIP_X + SHIP_W][SHIP_MASK] = SHIP

    def _info(self) -> dict[str, Any]:
        return {"score": self.score, "distance": self.distance, "gap": self._gap}

    def true_objects(self) -> FrameObjects:
        """The sprites and score the frame shows, from the game's state (ground truth for objects.parse)."""

        boxes = [("coin", x, y, COIN, COIN) for x, y in self.coins]
        boxes.append(("ship", SHIP_X, self.ship_y, SHIP_W, SHIP_H))
        return FrameObjects.from_boxes(boxes, self.score, None)

    def true_gap(self) -> tuple[np.ndarray, np.ndarray]:
        """The open rows of each column: its first row below the ceiling's wall and the first wall row below the
        gap, int64 (64,) each (ground truth for objects.read_gap)."""
        return self._top.copy(), self._bottom.copy()

    def scripted_action(self) -> int:
        """Plan the ship's height over the next 40 columns: avoid the walls, collect coins, keep central."""
        ys = np.arange(SIZE)[None, :]
        steps = np.arange(1, PLAN_HORIZON + 1)
        ceiling = sliding_window_view(self._top, SHIP_W).max(axis=1)[SHIP_X + steps]  # (H,)
        floor = sliding_window_view(self._bottom, SHIP_W).min(axis=1)[SHIP_X + steps]
        middle = (ceiling + floor - SHIP_H) / 2
        rewards = -0.01 * np.abs(ys - middle[:, None])
        rewards[(ys < ceiling[:, None]) | (ys + SHIP_H > floor[:, None])] = CRASH_PENALTY
        for x, y in self.coins:
            first, last = max(x - SHIP_X - SHIP_W + 1, 1), min(x - SHIP_X + COIN - 1, PLAN_HORIZON)
            if first <= last:
                rewards[first - 1:last, max(y - SHIP_H + 1, 0):y + COIN] += 1.0
        return plan_first_move(rewards, self.ship_y, self._moves)
