"""Keys of the play window: the game's key map (pygame key codes -> action) and the window's own control keys."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np

CONTROLS = {
    "return": ("Enter", "new start (a fresh real start context)"),
    "p": ("P", "pause / resume"),
    "n": ("N", "one step while paused"),
    "backspace": ("Backspace", "rewind (hold; up to the last 10 s), then play on from there"),
    "m": ("M", "switch human / agent control"),
    "v": ("V", "the real game beside the dream (restarts both from one real start)"),
    "t": ("T", "raise the sampling temperature"),
    "g": ("G", "lower the sampling temperature"),
    "f5": ("F5", "start / stop recording (MP4 and GIF)"),
    "f6": ("F6", "save the played episode into the dataset"),
    "h": ("H", "this help"),
    "escape": ("Esc", "quit"),
}
"""The window's control keys by pygame key name: (label, what it does). They never drive the game."""

_LETTER_ARROWS = {"a": "left", "d": "right", "w": "up", "s": "down"}


def key_constant(name: str) -> int:
    """pygame's key code for a key name of `CONTROLS` or an arrow ("return" -> pygame.K_RETURN, "p" -> K_p)."""
    import pygame

    return getattr(pygame, f"K_{name}", None) or getattr(pygame, f"K_{name.upper()}")


def control_codes() -> dict[int, str]:
    """pygame key code -> control key name."""
    return {key_constant(name): name for name in CONTROLS}


class KeyMap:
    """Held pygame keys -> an action: the combination with the most keys that are all held wins; with none
    held (or no combination matching) the game's no-op is sent."""

    def __init__(self, mapping: dict[tuple[int, ...], object], noop):
        self.mapping = mapping
        self.noop = noop
        self._combos = sorted(mapping, key=len, reverse=True)  # longest combinations first

    @classmethod
    def for_env(cls, env_id: str, action_space: gym.Space) -> KeyMap:
        """The key map of the real env `env_id` (its own, else dreamworld.envs' map for it), with the arrow keys
        doubling WASD; Box spaces without a map get arrows -> action vectors. Control keys are left out."""
        from dreamworld.envs.keymaps import keys_to_action_for, noop_action_for

        mapping = _env_keys(env_id) or keys_to_action_for(env_id, action_space)
        if mapping is None and isinstance(action_space, gym.spaces.Box):
            mapping = box_keys(action_space)
        mapping = with_arrows(mapping or {})
        controls = set(control_codes())
        mapping = {keys: action for keys, action in mapping.items() if not controls & set(keys)}
        if isinstance(action_space, gym.spaces.Box):
            mapping = {keys: np.asarray(a, dtype=action_space.dtype).reshape(action_space.shape)
                       for keys, a in mapping.items()}
        else:
            mapping = {keys: int(a) for keys, a in mapping.items()}
        return cls(mapping, noop_action_for(env_id, action_space))

    def action(self, held: set[int]):
        """The action for the keys held now."""
        for combo in self._combos:
            if held.issuperset(combo):
                return self.mapping[combo]
        return self.noop

    def describe(self) -> list[str]:
        """One line per action ("left / a: 2"), for the help overlay."""
        import pygame

        by_action: dict[str, list[str]] = {}
        for keys, action in self.mapping.items():
            label = np.asarray(action).round(2).tolist()
            by_action.setdefault(str(label), []).append("+".join(pygame.key.name(k) for k in keys))
        return [f"{' / '.join(keys)}: {label}" for label, keys in by_action.items()]


def _env_keys(env_id: str) -> dict | None:
    """The real env's own key map (built-in games, Atari, maps dreamworld.envs attaches), None when the env has
    none or is not installed here."""
    from dreamworld.envs import make_env

    try:
        env = make_env(env_id)
    except (ImportError, ValueError, gym.error.Error):
        return None
    try:
        return env.get_wrapper_attr("get_keys_to_action")() if env.has_wrapper_attr("get_keys_to_action") else None
    finally:
        env.close()


def with_arrows(mapping: dict[tuple[int, ...], object]) -> dict[tuple[int, ...], object]:
    """Add the arrow keys wherever a combination uses W, A, S or D (unless the map already uses arrows)."""
    arrows = {ord(letter): key_constant(arrow) for letter, arrow in _LETTER_ARROWS.items()}
    if any(set(keys) & set(arrows.values()) for keys in mapping):
        return dict(mapping)
    out = {}
    for keys, action in mapping.items():
        choices = [(k, arrows[k]) if k in arrows else (k,) for k in keys]
        for codes in itertools.product(*choices):
            out[tuple(sorted(codes))] = action
    return out


def box_keys(space: gym.spaces.Box) -> dict[tuple[int, ...], np.ndarray]:
    """A key map for a Box space with no known map: A/D push the first action dimension to its low / high end,
    W/S the second one to its high / low end (bounds of infinite ranges count as -1 / 1), pairs combine."""
    low = np.where(np.isfinite(space.low), space.low, -1.0).astype(np.float32).reshape(-1)  # (A,)
    high = np.where(np.isfinite(space.high), space.high, 1.0).astype(np.float32).reshape(-1)  # (A,)
    zero = np.clip(np.zeros_like(low), low, high)  # (A,)
    pushes = {ord("a"): (0, low), ord("d"): (0, high), ord("w"): (1, high), ord("s"): (1, low)}
    pushes = {k: (dim, end) for k, (dim, end) in pushes.items() if dim < low.size}
    mapping = {}
    for count in (1, 2):
        for keys in itertools.combinations(sorted(pushes), count):
            if count == 2 and pushes[keys[0]][0] == pushes[keys[1]][0]:
                continue  # opposite ends of one dimension
            action = zero.copy()
            for k in keys:
                dim, end = pushes[k]
                action[dim] = end[dim]
            mapping[keys] = action.reshape(space.shape)
    return mapping
