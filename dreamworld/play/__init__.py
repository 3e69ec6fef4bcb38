"""Playing a dream in a pygame window: `PlaySession` (the dream, rewind, the real game beside it), `KeyMap`
(keys -> actions), `PlayApp` (the window and its loop), `KeyScript` (scripted keys for headless play)."""

from .app import PlayApp, PlayOptions, PlayStats
from .keymap import CONTROLS, KeyMap
from .script import KeyScript
from .session import PlaySession

__all__ = ["CONTROLS", "KeyMap", "KeyScript", "PlayApp", "PlayOptions", "PlaySession", "PlayStats"]
