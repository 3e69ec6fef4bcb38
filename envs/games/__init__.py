"""Built-in 64x64 pixel games written in numpy."""

from __future__ import annotations

import gymnasium

from ._base import PixelGame
from .bricks import Bricks
from .catch import Catch
from .cave import Cave
from .object_vector import ObjectEncoder, ObjectObservation, object_fields, object_space, object_vector
from .objects import KINDS, parse, parser, read_gap
from .sprites import FrameObjects, Sprite

GAMES: dict[str, type[PixelGame]] = {"Bricks": Bricks, "Cave": Cave, "Catch": Catch}
"""Display name -> game class; each is registered as dreamworld/<name>-v0."""
MAX_EPISODE_STEPS: dict[str, int] = {"Bricks": 2000, "Cave": 2000, "Catch": 1500}
"""Time limit (truncation) of each game when made through gymnasium."""

__all__ = [
    "GAMES", "KINDS", "MAX_EPISODE_STEPS", "Bricks", "Catch", "Cave", "FrameObjects", "ObjectEncoder",
    "ObjectObservation", "PixelGame", "Sprite", "object_fields", "object_space", "object_vector", "parse", "parser",
    "read_gap", "register_games",
]


def register_games() -> None:
    """Register every game as `dreamworld/<name>-v0` with gymnasium; ids already registered are kept."""
    for name, cls in GAMES.items():
        env_id = f"dreamworld/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point=f"{cls.__module__}:{cls.__name__}",
                max_episode_steps=MAX_EPISODE_STEPS[name],
            )
