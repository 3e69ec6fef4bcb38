"""Bricks: a Breakout-like paddle-and-ball game."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ._base import BACKGROUND, HUD_HEIGHT, SIZE, PixelGame, draw_hud, fill_rect, rgb
from .sprites import FrameObjects

BRICK_ROWS, BRICK_COLS = 5, 8
BRICK_W, BRICK_H = 7, 3  # each brick sits in an 8x4 cell, leaving 1 px gaps
BRICKS_TOP = 14
PADDLE_W, PADDLE_H, PADDLE_Y, PADDLE_SPEED = 10, 2, 60, 3
BALL = 2  # the ball is BALL x BALL pixels
PLAY_TOP = HUD_HEIGHT + 1  # row 7 is the ceiling line
START_LIVES = 3
# Horizontal speed after a paddle hit, by where the ball meets the paddle (0 keeps the direction at speed 1).
BOUNCE_VX = (-2, -2, -1, -1, -1, 0, 1, 1, 1, 2, 2)

ROW_COLORS = (rgb(230, 50, 50), rgb(245, 150, 30), rgb(235, 225, 40), rgb(60, 205, 70), rgb(60, 120, 245))
CEILING = rgb(100, 100, 120)
PADDLE = rgb(40, 225, 225)
BALL_COLOR = rgb(255, 255, 255)


class Bricks(PixelGame):
    """Break 40 bricks with a 2x2 ball bounced off a paddle; a cleared wall is rebuilt.

    Actions: 0 noop, 1 fire (launch the ball waiting on the paddle), 2 left, 3 right.
    Reward +1 per brick. A ball that falls past the paddle costs a life; the episode terminates when the
    3 lives are gone. Info: score, lives, bricks_left.
    """

    NOOP, FIRE, LEFT, RIGHT = range(4)
    KEYS = {" ": FIRE, "a": LEFT, "d": RIGHT}

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode)
        self.action_space = spaces.Discrete(4)
        self._brick_id = np.full((SIZE, SIZE), -1, dtype=np.int64)  # which brick covers each pixel
        for i in range(BRICK_ROWS * BRICK_COLS):
            x, y = self._brick_xy(i)
            self._brick_id[y:y + BRICK_H, x:x + BRICK_W] = i
        self._board = np.zeros_like(self.frame)  # HUD, ceiling and bricks: redrawn only when they change

    @staticmethod
    def _brick_xy(i: int) -> tuple[int, int]:
        return (i % BRICK_COLS) * (BRICK_W + 1), BRICKS_TOP + (i // BRICK_COLS) * (BRICK_H + 1)

    def _new_game(self) -> None:
        self.score, self.lives = 0, START_LIVES
        self.paddle_x = (SIZE - PADDLE_W) // 2
        self._build_wall()
        self._serve()

    def _build_wall(self) -> None:
        self._alive = np.ones(BRICK_ROWS * BRICK_COLS, dtype=bool)
        self._board[:] = BACKGROUND
        self._board[HUD_HEIGHT] = CEILING
        for i in range(BRICK_ROWS * BRICK_COLS):
            x, y = self._brick_xy(i)
            fill_rect(self._board, x, y, BRICK_W, BRICK_H, ROW_COLORS[i // BRICK_COLS])
        draw_hud(self._board, self.score, self.lives)

    def _serve(self) -> None:
        """Put the ball on the paddle, waiting for FIRE."""
        self.waiting = True
        self.vx, self.vy = 0, 0
        self._stick_ball()

    def _stick_ball(self) -> None:
        self.ball_x, self.ball_y = self.paddle_x + PADDLE_W // 2 - 1, PADDLE_Y - BALL

    def _update(self, action: int) -> tuple[float, bool]:
        if action == self.LEFT:
            self.paddle_x = max(self.paddle_x - PADDLE_SPEED, 0)
        elif action == self.RIGHT:
            self.paddle_x = min(self.paddle_x + PADDLE_SPEED, SIZE - PADDLE_W)
        if self.waiting:
            self._stick_ball()
            if action == self.FIRE:
                self.waiting = False
                self.vx, self.vy = int(self.np_random.choice((-1, 1))), -1
            return 0.0, False
        reward = self._move_ball()
        if self.ball_y >= SIZE:
            self.lives -= 1
            draw_hud(self._board, self.score, self.lives)
            if self.lives == 0:
                return reward, True
            self._serve()
        return reward, False

    def _move_ball(self) -> int:
        """Move the ball one step, bouncing off walls, ceiling, bricks and paddle; returns bricks broken."""
        x, y = self.ball_x + self.vx, self.ball_y + self.vy
        if x < 0 or x > SIZE - BALL:
            x = -x if x < 0 else 2 * (SIZE - BALL) - x
            self.vx = -self.vx
        if y < PLAY_TOP:
            y = 2 * PLAY_TOP - y
            self.vy = -self.vy
        hit = {int(i) for i in self._brick_id[y:y + BALL, x:x + BALL].flat if i >= 0 and self._alive[i]}
        for i in hit:
            self._alive[i] = False
            bx, by = self._brick_xy(i)
            fill_rect(self._board, bx, by, BRICK_W, BRICK_H, BACKGROUND)
        if hit:
            self.vy = -self.vy
            self.score += len(hit)
            draw_hud(self._board, self.score, self.lives)
            if not self._alive.any():
                self._build_wall()
        offset = x + BALL - 1 - self.paddle_x  # 0 .. PADDLE_W when the ball overlaps the paddle
        if self.vy > 0 and PADDLE_Y - BALL < y < PADDLE_Y + PADDLE_H and 0 <= offset <= PADDLE_W:
            y = PADDLE_Y - BALL
            self.vy = -1
            self.vx = BOUNCE_VX[offset] or (1 if self.vx > 0 else -1)
        self.ball_x, self.ball_y = x, y
        return len(hit)

    def _draw(self) -> None:
        frame = self.frame
        frame[:] = self._board
        frame[PADDLE_Y:PADDLE_Y + PADDLE_H, self.paddle_x:self.paddle_x + PADDLE_W] = PADDLE
        fill_rect(frame, self.ball_x, self.ball_y, BALL, BALL, BALL_COLOR)

    def _info(self) -> dict[str, Any]:
        return {"score": self.score, "lives": self.lives, "bricks_left": int(self._alive.sum())}

    def true_objects(self) -> FrameObjects:
        """The sprites, score and lives the frame shows, from the game's state (ground truth for objects.parse)."""

        boxes = [("brick", *self._brick_xy(int(i)), BRICK_W, BRICK_H) for i in np.flatnonzero(self._alive)]
        boxes.append(("paddle", self.paddle_x, PADDLE_Y, PADDLE_W, PADDLE_H))
        boxes.append(("ball", self.ball_x, self.ball_y, BALL, BALL))
        return FrameObjects.from_boxes(boxes, self.score, self.lives)

    def scripted_action(self) -> int:
        """Launch, then keep the paddle under the ball, meeting it off-centre to steer towards the bricks."""
        if self.waiting:
            return self.FIRE
        columns = np.flatnonzero(self._alive.reshape(BRICK_ROWS, BRICK_COLS).any(axis=0))
        target_x = (columns.mean() + 0.5) * (BRICK_W + 1)
        offset = 3 if target_x < self.ball_x else 7  # index into BOUNCE_VX: -1 or +1
        wanted = self.ball_x + BALL - 1 - offset
        if wanted < self.paddle_x - 1:
            return self.LEFT
        if wanted > self.paddle_x + 1:
            return self.RIGHT
        return self.NOOP
