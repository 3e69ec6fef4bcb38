"""Catch: gems and bombs fall from random places at random times; catch the gems, dodge the bombs."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ._base import BACKGROUND, HUD_HEIGHT, SIZE, PixelGame, draw_hud, move_table, plan_first_move, rgb
from .sprites import FrameObjects

PLAYER_W, PLAYER_H, PLAYER_Y, PLAYER_SPEED = 8, 2, 60, 2
GEM, BOMB = 0, 1
ITEM_SIZE = (2, 3)  # gems are 2x2 pixels, bombs 3x3
SPAWN_CHANCE, BOMB_CHANCE, FAST_CHANCE = 0.08, 0.35, 0.4  # per step; share of bombs; share falling 2 px/step
START_LIVES = 3
PLAN_HORIZON, BOMB_PENALTY = 30, -100.0

ITEM_COLORS = (rgb(60, 240, 120), rgb(240, 40, 40))
PLAYER = rgb(90, 140, 255)
FLOOR = rgb(60, 60, 80)


class Catch(PixelGame):
    """Move a catcher along the floor under items that spawn at random columns and times.

    Actions: 0 noop, 1 left, 2 right (2 px per step). Reward +1 per 2x2 gem caught (missed gems cost nothing).
    A 3x3 bomb that touches the catcher costs a life; the episode terminates when the 3 lives are gone.
    Info: score, lives, items (on screen).
    """

    NOOP, LEFT, RIGHT = range(3)
    KEYS = {"a": LEFT, "d": RIGHT}

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode)
        self.action_space = spaces.Discrete(3)
        self._moves = move_table(SIZE - PLAYER_W + 1, (0, -PLAYER_SPEED, PLAYER_SPEED))
        self._background = np.empty_like(self.frame)  # HUD and floor: redrawn only when they change

    def _new_game(self) -> None:
        self.score, self.lives = 0, START_LIVES
        self.player_x = (SIZE - PLAYER_W) // 2
        self.items: list[list[int]] = []  # [x, y, speed, kind] of each falling item
        self._background[:] = BACKGROUND
        self._background[PLAYER_Y + PLAYER_H:] = FLOOR
        draw_hud(self._background, self.score, self.lives)

    def _update(self, action: int) -> tuple[float, bool]:
        if action == self.LEFT:
            self.player_x = max(self.player_x - PLAYER_SPEED, 0)
        elif action == self.RIGHT:
            self.player_x = min(self.player_x + PLAYER_SPEED, SIZE - PLAYER_W)
        reward, lives, falling = 0, self.lives, []
        for item in self.items:
            x, y, speed, kind = item
            y = item[1] = y + speed
            size = ITEM_SIZE[kind]
            in_rows = PLAYER_Y - size < y < PLAYER_Y + PLAYER_H
            touches = in_rows and self.player_x - size < x < self.player_x + PLAYER_W
            if touches and kind == GEM:
                reward += 1
            elif touches:
                self.lives = max(self.lives - 1, 0)
            elif y < PLAYER_Y + PLAYER_H:
                falling.append(item)
        self.items = falling
        if reward or self.lives != lives:
            self.score += reward
            draw_hud(self._background, self.score, self.lives)
        self._spawn()
        return float(reward), self.lives == 0

    def _spawn(self) -> None:
        """Maybe drop a new item, in columns no other item occupies (so items never overlap)."""
        rng = self.np_random
        if rng.random() < SPAWN_CHANCE:
            kind = BOMB if rng.random() < BOMB_CHANCE else GEM
            size = ITEM_SIZE[kind]
            x = int(rng.integers(0, SIZE - size + 1))
            speed = 2 if rng.random() < FAST_CHANCE else 1
            if all(x + size <= other[0] or other[0] + ITEM_SIZE[other[3]] <= x for other in self.items):
                self.items.append([x, HUD_HEIGHT + 1, speed, kind])

    def _draw(self) -> None:
        frame = self.frame
        frame[:] = self._background
        for x, y, _, kind in self.items:
            size = ITEM_SIZE[kind]
            frame[y:y + size, x:x + size] = ITEM_COLORS[kind]
        frame[PLAYER_Y:PLAYER_Y + PLAYER_H, self.player_x:self.player_x + PLAYER_W] = PLAYER

    def _info(self) -> dict[str, Any]:
        return {"score": self.score, "lives": self.lives, "items": len(self.items)}

    def true_objects(self) -> FrameObjects:
        """The sprites, score and lives the frame shows, from the game's state (ground truth for objects.parse)."""

        boxes = [(("gem", "bomb")[kind], x, y, ITEM_SIZE[kind], ITEM_SIZE[kind]) for x, y, _, kind in self.items]
        boxes.append(("player", self.player_x, PLAYER_Y, PLAYER_W, PLAYER_H))
        return FrameObjects.from_boxes(boxes, self.score, self.lives)

    def scripted_action(self) -> int:
        """Plan the catcher's position over the next 30 steps: catch the gems, never touch a bomb."""
        positions = SIZE - PLAYER_W + 1
        rewards = np.zeros((PLAN_HORIZON, positions))
        for x, y, speed, kind in self.items:
            size = ITEM_SIZE[kind]
            # steps t when the item overlaps the catcher's rows: PLAYER_Y - size < y + t*speed < PLAYER_Y + H
            first = max((PLAYER_Y - size - y) // speed + 1, 1)
            last = min((PLAYER_Y + PLAYER_H - 1 - y) // speed, PLAN_HORIZON)
            if first <= last:
                value = 1.0 if kind == GEM else BOMB_PENALTY
                rewards[first - 1:last, max(x - PLAYER_W + 1, 0):x + size] += value
        return plan_first_move(rewards, self.player_x, self._moves)
