"""`DreamEnv`: one dream of a trained world model as a `gymnasium.Env` (`gymnasium.make("dreamworld/Dream-v0")`).

A thin wrapper over a `DreamVectorEnv` of one dream: the same model, start contexts, seeding and sampling, so a
dream run alone and the same dream run inside a batch give the same frames.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import torch

from dreamworld.dream.actions import action_array, show_action
from dreamworld.dream.vector_env import DreamVectorEnv, Viewer
from dreamworld.model.world_model import WorldModel


class DreamEnv(gym.Env):
    """A world model's dream as an environment: observations, rewards and terminations come from the model.

    Keyword arguments as for `DreamVectorEnv` (checkpoint, data, obs_type, temperature, max_episode_steps,
    render_mode, device, precision); `render_mode="rgb_array"` gives the current frame (H, W, 3), "human" shows it in a
    pygame window. `reset(seed=...)` seeds the start context and the sampling: same seed and actions, same dream.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(self, *, checkpoint: str | os.PathLike, data: str | os.PathLike | None = None,
                 obs_type: str = "pixels", temperature: float = 1.0, max_episode_steps: int = 1000,
                 render_mode: str | None = None, device: str | torch.device | None = None,
                 precision: str = "float32"):
        self.dreams = DreamVectorEnv(1, checkpoint=checkpoint, data=data, obs_type=obs_type, temperature=temperature,
                                     max_episode_steps=max_episode_steps, device=device, precision=precision)
        self.render_mode = render_mode
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got "
                             f"{render_mode!r}")
        self.metadata = {**self.metadata, "render_fps": self.dreams.metadata["render_fps"]}
        self.action_space = self.dreams.single_action_space
        self.observation_space = self.dreams.single_observation_space
        self._viewer: Viewer | None = None

    @property
    def model(self) -> WorldModel:
        """The world model that dreams."""
        return self.dreams.model

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new dream from a real start context (picked and sampled with `seed` when given: a non-negative
        int, numpy's too)."""
        seed = int(seed) if isinstance(seed, np.integer) else seed
        super().reset(seed=seed)
        obs, _ = self.dreams.reset(seed=seed)
        if self.render_mode == "human":
            self.render()
        return obs[0], {}

    def step(self, action):
        """Advance the dream one frame: (obs, predicted reward, predicted termination, truncated, info)."""
        batch = np.expand_dims(action_array(action, self.action_space), 0)  # (1, *action shape)
        if batch.shape[1:] != self.action_space.shape:
            raise ValueError(f"action {show_action(action)} is outside {self.action_space}: expected shape "
                             f"{self.action_space.shape}")
        obs, reward, terminated, truncated, _ = self.dreams.step(batch)
        if self.render_mode == "human":
            self.render()
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self) -> np.ndarray | None:
        """"rgb_array": the current frame uint8 (H, W, 3); "human": show it in a window; None: nothing."""
        if self.render_mode == "rgb_array":
            return self.dreams.current_frames()[0]
        if self.render_mode == "human":
            if self._viewer is None:
                self._viewer = Viewer(f"dream: {self.model.cfg.env_id or 'world model'}", self.metadata["render_fps"])
            self._viewer.show(self.dreams.current_frames()[0])
        return None

    def close(self) -> None:
        """Close the window, if any."""
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
        self.dreams.close()

    def get_keys_to_action(self) -> dict:
        """The key map of the real env the model learned (tuples of pygame key codes -> action), so that
        `gymnasium.utils.play.play` works on the dream. Needs that env installed."""
        from dreamworld.envs import make_env

        env_id = self.model.cfg.env_id
        try:
            env = make_env(env_id)
        except (ImportError, ValueError, gym.error.Error) as e:
            raise RuntimeError(f"the dream's key map comes from its real env {env_id!r}, which is not available "
                               f"here ({e}): install it, or pass keys_to_action= to play()") from None
        try:
            keys = env.get_wrapper_attr("get_keys_to_action")() if env.has_wrapper_attr("get_keys_to_action") else None
        finally:
            env.close()
        if keys is None:
            raise RuntimeError(f"the real env {env_id!r} has no key map: pass keys_to_action= to play()")
        return keys
