"""Scripted key presses for headless play (tests, demo recordings): "right*10,space,p,n,n,backspace*5,wait*30".

Items are separated by commas, spaces or new lines; `#` starts a comment. An item is one key or several joined
by `+` (pygame key names: left, right, up, down, space, a, return, backspace, f5, ...; also enter, esc), held for
one frame or for `*count` frames, then released; `wait` holds nothing. So `n,n,n` is three presses and `n*3` is
one press held three frames; held Backspace rewinds one frame per frame.
"""

from __future__ import annotations

import os
from pathlib import Path

ALIASES = {"enter": "return", "esc": "escape"}


def read_script(script: str) -> str:
    """The script text: `script` itself, or the content of the file it names."""
    path = Path(script)
    try:
        is_file = path.is_file()
    except OSError:  # a long script string is not a valid path
        is_file = False
    return path.read_text() if is_file else script


def parse_script(text: str) -> list[tuple[tuple[int, ...], int]]:
    """Script text -> items (pygame key codes held, frames held). Needs pygame's display initialised."""
    import pygame

    items = []
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    for word in " ".join(lines).replace(",", " ").split():
        keys, _, count = word.partition("*")
        try:
            frames = int(count) if count else 1
        except ValueError:
            frames = 0
        if frames < 1:
            raise ValueError(f"bad repeat count in script item {word!r}: write KEY*N with N >= 1 (e.g. right*10)")
        codes = []
        for name in keys.lower().split("+"):
            if name == "wait":
                continue
            try:
                codes.append(pygame.key.key_code(ALIASES.get(name, name)))
            except ValueError:
                raise ValueError(f"unknown key {name!r} in script item {word!r}: use pygame key names such as "
                                 "left, right, up, down, space, a, return, backspace, f5, escape, or wait") from None
        items.append((tuple(codes), frames))
    return items


class KeyScript:
    """Plays script items back as pygame key events, one frame at a time."""

    def __init__(self, items: list[tuple[tuple[int, ...], int]]):
        self._items = list(items)
        self._index, self._left, self._held = -1, 0, ()

    @classmethod
    def from_option(cls, script: str | os.PathLike) -> KeyScript:
        """From a --script value (the script, or a file holding it)."""
        return cls(parse_script(read_script(str(script))))

    @property
    def done(self) -> bool:
        """Every item has been played and released."""
        return self._index >= len(self._items)

    def post_frame(self) -> None:
        """Post this frame's KEYUP / KEYDOWN events to pygame's queue (nothing once done)."""
        import pygame

        if self.done:
            return
        if self._left == 0:
            for key in self._held:
                pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key, mod=0, scancode=0, unicode=""))
            self._index += 1
            if self.done:
                return
            self._held, self._left = self._items[self._index]
            for key in self._held:
                pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, scancode=0, unicode=""))
        self._left -= 1
