"""What a frame shows, as the built-in games draw it and their frame parsers read it: sprites, score and lives.
A leaf the games and their parsers share."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import SIZE


@dataclass(frozen=True)
class Sprite:
    """One object on screen: its kind and the centre of its pixels."""

    kind: str  # e.g. "gem", "bomb", "player" (Catch); "ball", "paddle", "brick" (Bricks); "ship", "coin" (Cave)
    x: float  # centre column in pixels
    y: float  # centre row in pixels

    @classmethod
    def from_box(cls, kind: str, x: int, y: int, w: int, h: int) -> Sprite | None:
        """The sprite drawn as the w x h box at top-left (x, y), centred on the box's part inside the frame;
        None when less than half of the box is inside."""
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, SIZE), min(y + h, SIZE)
        if 2 * max(x1 - x0, 0) * max(y1 - y0, 0) < w * h:
            return None
        return cls(kind, (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2)


@dataclass
class FrameObjects:
    """What a frame shows: its sprites and the HUD's score and lives (None where unreadable or absent)."""

    sprites: list[Sprite]
    score: int | None
    lives: int | None  # None for games without lives (Cave)

    @classmethod
    def from_boxes(cls, boxes: list[tuple[str, int, int, int, int]], score: int, lives: int | None) -> FrameObjects:
        """Objects from the drawn boxes (kind, x, y, w, h) of the sprites; boxes less than half on screen are left
        out."""
        sprites = [Sprite.from_box(*box) for box in boxes]
        return cls([s for s in sprites if s is not None], score, lives)
