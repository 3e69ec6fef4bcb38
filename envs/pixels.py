"""Wrappers that bring any env to the dreamworld observation convention: uint8 H x W x 3 frames."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from PIL import Image


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 (H, W, 3) frame to (size[0], size[1], 3) with area averaging (no-op when equal)."""
    if frame.shape[:2] == tuple(size):
        return frame
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BOX), dtype=np.uint8)


class PixelObservation(gym.ObservationWrapper):
    """Resize image observations to uint8 (size[0], size[1], 3) and expose a key map for human play."""

    def __init__(self, env: gym.Env, size: tuple[int, int] = (64, 64), keys_to_action: dict | None = None):
        super().__init__(env)
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"size must be (height, width) with both >= 8, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.observation_space = gym.spaces.Box(0, 255, (*self.size, 3), np.uint8)
        self._keys_to_action = keys_to_action

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Resize one frame."""
        return resize_frame(np.asarray(observation, dtype=np.uint8), self.size)

    def get_keys_to_action(self) -> dict:
        """The key map of the wrapped env, or the one given for this env id."""
        if self._keys_to_action is not None:
            return self._keys_to_action
        if self.env.has_wrapper_attr("get_keys_to_action"):
            return self.env.get_wrapper_attr("get_keys_to_action")()
        raise AttributeError(f"{self.spec.id if self.spec else self.env} has no key map")


class AtariFrameSkip(gym.Wrapper):
    """Repeat each action `skip` frames, sum rewards, max-pool the last two frames; random no-ops at reset."""

    def __init__(self, env: gym.Env, skip: int = 4, noop_max: int = 30):
        super().__init__(env)
        self.skip = skip
        self.noop_max = noop_max
        shape = env.observation_space.shape
        self._buffer = np.zeros((2, *shape), dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        """Reset, then take a random number (0..noop_max) of no-op actions."""
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self.env.action_space.seed(seed)
        noops = int(self.env.unwrapped.np_random.integers(0, self.noop_max + 1)) if self.noop_max else 0
        for _ in range(noops):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info

    def step(self, action):
        """Step `skip` frames with the same action; return the max of the last two frames."""
        total = 0.0
        terminated = truncated = False
        info = {}
        for i in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if i >= self.skip - 2:
                self._buffer[i - (self.skip - 2)] = obs
            if terminated or truncated:
                return obs, total, terminated, truncated, info
        return self._buffer.max(axis=0), total, terminated, truncated, info

    def get_keys_to_action(self) -> dict:
        """The ALE key map (minimal action set)."""
        return self.env.unwrapped.get_keys_to_action()
