"""Shared machinery of the built-in games: the 64x64 frame, drawing, rendering, key maps, a planner."""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

SIZE = 64
"""Width and height of every frame, in pixels."""
HUD_HEIGHT = 7
"""Rows 0..6 hold the score (and lives); play starts below."""
WINDOW_SCALE = 8
"""The human window shows each pixel as an 8x8 block."""


def rgb(r: int, g: int, b: int) -> np.ndarray:
    """A colour as a uint8 array, ready to assign to frame slices."""
    return np.array((r, g, b), dtype=np.uint8)


BACKGROUND = rgb(10, 10, 26)
HUD_TEXT = rgb(235, 235, 235)
LIFE = rgb(240, 60, 90)

_DIGIT_ROWS = (  # 3x5 pixel font, rows top to bottom, for 0..9
    "111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
    "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111",
)
DIGITS = np.array([[c == "1" for c in rows] for rows in _DIGIT_ROWS]).reshape(10, 5, 3)
"""Boolean masks (10, 5, 3) of the digits 0..9."""


def fill_rect(frame: np.ndarray, x: int, y: int, w: int, h: int, color: np.ndarray) -> None:
    """Paint the w x h rectangle whose top-left corner is (x, y), clipped to the frame."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = color


def draw_number(frame: np.ndarray, x: int, y: int, value: int, color: np.ndarray) -> None:
    """Write a non-negative integer in the 3x5 font, left-aligned at (x, y), 4 px per digit."""
    for i, ch in enumerate(str(value)):
        frame[y:y + 5, x + 4 * i:x + 4 * i + 3][DIGITS[int(ch)]] = color


def draw_hud(frame: np.ndarray, score: int, lives: int = 0) -> None:
    """Clear the HUD band, write the score at the left and one 3x3 block per life at the right."""
    frame[:HUD_HEIGHT] = BACKGROUND
    draw_number(frame, 1, 1, score, HUD_TEXT)
    for i in range(lives):
        frame[2:5, SIZE - 4 - 4 * i:SIZE - 1 - 4 * i] = LIFE


def move_table(n_positions: int, moves: tuple[int, ...]) -> np.ndarray:
    """(len(moves), n_positions) table of the position reached by each move, clipped to the track."""
    return np.clip(np.arange(n_positions)[None, :] + np.asarray(moves)[:, None], 0, n_positions - 1)


def plan_first_move(rewards: np.ndarray, start: int, moves: np.ndarray, discount: float = 0.95) -> int:
    """Dynamic programming along a 1-D track: the index of the best first move.

    rewards[t, p] is the reward for being at position p after t + 1 steps; `moves` comes from `move_table`.
    Ties go to the lowest move index (put the no-op first).
    """
    value = rewards[-1].copy()
    for t in range(len(rewards) - 2, -1, -1):
        value = rewards[t] + discount * value[moves].max(axis=0)
    return int(np.argmax(value[moves[:, start]]))


def _arrow_codes() -> dict[str, int]:
    """pygame's arrow-key codes under their WASD letters, or nothing when pygame is not installed."""
    try:
        import pygame
    except ImportError:
        return {}
    return {"w": pygame.K_UP, "a": pygame.K_LEFT, "s": pygame.K_DOWN, "d": pygame.K_RIGHT}


class PixelGame(gym.Env[np.ndarray, np.int64]):
    """Base of the built-in games: a 64x64x3 uint8 frame redrawn every step, rgb_array and human rendering.

    Subclasses set `action_space`, `KEYS` and implement `_new_game`, `_update`, `_draw`, `_info` and
    `scripted_action`. Action 0 is always the no-op.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}
    KEYS: dict[str, int] = {}
    """Key combinations, one character per key ("a", " ", "a "), mapped to actions."""

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.frame = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        self._window = None
        self._clock = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a new game (seeded with `seed`, a non-negative int, numpy's too); returns (frame, info)."""
        super().reset(seed=int(seed) if isinstance(seed, np.integer) else seed)
        self._new_game()
        self._draw()
        if self.render_mode == "human":
            self.render()
        return self.frame.copy(), self._info()

    def step(self, action):
        """Advance one frame; returns (frame, reward, terminated, truncated=False, info)."""
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        reward, terminated = self._update(int(action))
        self._draw()
        if self.render_mode == "human":
            self.render()
        return self.frame.copy(), float(reward), terminated, False, self._info()

    def render(self) -> np.ndarray | None:
        """The current frame ("rgb_array"), or show it in a pygame window scaled x8 ("human")."""
        if self.render_mode == "rgb_array":
            return self.frame.copy()
        if self.render_mode == "human":
            self._show()
        return None

    def _show(self) -> None:
        try:
            import pygame
        except ImportError as e:
            raise ImportError("render_mode='human' needs pygame: pip install 'dreamworld[play]'") from e
        if self._window is None:
            pygame.display.init()
            pygame.display.set_caption(type(self).__name__)
            self._window = pygame.display.set_mode((SIZE * WINDOW_SCALE, SIZE * WINDOW_SCALE))
            self._clock = pygame.time.Clock()
        surface = pygame.surfarray.make_surface(self.frame.transpose(1, 0, 2))
        pygame.transform.scale(surface, self._window.get_size(), self._window)  # nearest neighbour
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self.metadata["render_fps"])

    def close(self) -> None:
        """Close the human window, if one is open."""
        if self._window is not None:
            import pygame

            pygame.display.quit()
            self._window = None

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        """Sorted key-code tuples -> action, as `gymnasium.utils.play.play` expects.

        Letters (WASD, space) always; the arrow keys as well when pygame is installed. Gymnasium's play()
        rejects an empty tuple, so "no key" is not listed: it means action 0, the no-op (play's default).
        """
        arrows = _arrow_codes()
        mapping = {}
        for combo, action in self.KEYS.items():
            choices = [(ord(c), arrows[c]) if c in arrows else (ord(c),) for c in combo]
            for codes in itertools.product(*choices):
                mapping[tuple(sorted(codes))] = action
        return mapping

    def scripted_action(self) -> int:
        """A good action computed from the internal state (used by the scripted policy)."""
        raise NotImplementedError

    def _new_game(self) -> None:
        """Set up the state of a new game, drawing randomness from `self.np_random`."""
        raise NotImplementedError

    def _update(self, action: int) -> tuple[float, bool]:
        """Apply one action; returns (reward, terminated)."""
        raise NotImplementedError

    def _draw(self) -> None:
        """Paint the current state into `self.frame`."""
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        """The info dict returned by reset and step."""
        raise NotImplementedError
