"""Crafter (Hafner 2021) as a Gymnasium env observing uint8 64 x 64 x 3 frames."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

# Crafter's 17 actions, keyed WASD to move, space to do, and letters for the rest.
_CRAFTER_KEYS = {(ord("a"),): 1, (ord("d"),): 2, (ord("w"),): 3, (ord("s"),): 4, (ord(" "),): 5,
                 (ord("z"),): 6, (ord("t"),): 7, (ord("r"),): 8, (ord("f"),): 9, (ord("p"),): 10,
                 (ord("1"),): 11, (ord("2"),): 12, (ord("3"),): 13, (ord("4"),): 14, (ord("5"),): 15,
                 (ord("6"),): 16}


class CrafterEnv(gym.Env):
    """Gymnasium adapter for `crafter.Env`: terminated on death, truncated at the episode length."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, size: tuple[int, int] = (64, 64), reward: bool = True, length: int = 10_000,
                 render_mode: str | None = None):
        import crafter

        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"crafter supports render_mode 'rgb_array' only, got {render_mode!r}")
        self.render_mode = render_mode
        self._size = (int(size[0]), int(size[1]))
        self._make = lambda seed: crafter.Env(size=self._size, reward=reward, length=length, seed=seed)
        self._env = None
        self._last = np.zeros((*self._size, 3), np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, (*self._size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(17)

    def reset(self, *, seed=None, options=None):
        """Start a new world; a seed makes the world and its dynamics reproducible."""
        super().reset(seed=seed)
        world_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._env = self._make(world_seed)
        self._last = self._env.reset()
        return self._last, {}

    def step(self, action):
        """Step crafter; its 'discount' of 0 marks death (terminated), otherwise done means truncated."""
        if self._env is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, done, info = self._env.step(int(action))
        terminated = bool(done and info["discount"] == 0)
        truncated = bool(done and not terminated)
        self._last = obs
        return obs, float(reward), terminated, truncated, {"achievements": dict(info["achievements"])}

    def render(self):
        """The last observation."""
        return self._last

    def get_keys_to_action(self) -> dict:
        """WASD moves, space interacts, other letters craft and place."""
        return dict(_CRAFTER_KEYS)


def make_crafter(env_id: str, *, size, render_mode=None, **options) -> gym.Env:
    """Build crafter; 'crafter:NoReward' turns rewards off."""
    reward = not env_id.endswith("NoReward")
    return CrafterEnv(size=size, reward=reward, render_mode=render_mode, **options)
