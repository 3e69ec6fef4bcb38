"""What an agent of a dream observes, in one place: the kinds (`OBS_TYPES`), a world model's latent codes (the
FSQ codes of a frame's tokens) and their space, the encoder that turns real frames into those codes, and the
reader that lets an objects agent act on a built-in game's frames.

    pixels   uint8 (H, W, 3) frames
    latent   float32 (N, dims) FSQ codes of the frame's N tokens, row-major over the token grid, in [-1, 1]
    objects  float32 object vectors of a built-in game's frames (`dreamworld.envs.games.object_space(env_id)`)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from dreamworld.envs.games.object_vector import ObjectEncoder
from dreamworld.model.world_model import WorldModel

OBS_TYPES = ("pixels", "latent", "objects")
"""The observation kinds of a dream (and of the real game as `real_envs` offers it to an agent)."""


def check_obs_type(obs_type: str) -> None:
    """Raise unless `obs_type` is one of `OBS_TYPES`."""
    if obs_type not in OBS_TYPES:
        raise ValueError(f"obs_type must be one of {OBS_TYPES}, got {obs_type!r}")


def latent_space(model: WorldModel) -> gym.spaces.Box:
    """The space of one latent observation: float32 (tokens per frame, FSQ dims) in [-1, 1]."""
    return gym.spaces.Box(-1.0, 1.0, (model.tokenizer.tokens_per_frame, len(model.cfg.tokenizer.levels)), np.float32)


@torch.no_grad()
def latent_codes(model: WorldModel, tokens: torch.Tensor) -> np.ndarray:
    """Token indices (B, N) -> the latent observations float32 (B, N, dims) an agent sees."""
    return model.tokenizer.fsq.indices_to_codes(tokens).cpu().numpy()  # (B, N, dims)


class FrameEncoder:
    """uint8 frames (N, H, W, 3) -> float32 FSQ codes (N, tokens, dims), as a dream's latent observations."""

    def __init__(self, model: WorldModel):
        self.model = model
        self.space = latent_space(model)

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        tokens = self.model.encode(torch.from_numpy(np.ascontiguousarray(frames)))  # (N, tokens)
        return latent_codes(self.model, tokens)  # (N, tokens, dims)


class ObjectFramePolicy:
    """An "objects" policy that also acts on its game's frames uint8 (N, H, W, 3): it reads them with the game's
    frame parser (`ObjectEncoder`), measuring moves from the frames it was given before (`reset` when rows start
    new episodes); object vectors (N, size) pass through. Everything else is the policy's."""

    def __init__(self, policy):
        self.policy = policy
        self._objects: ObjectEncoder | None = None

    def __getattr__(self, name: str):
        if name == "policy":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.policy, name)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Actions (N, ...) for frames (N, H, W, 3) or object vectors (N, size)."""
        if np.ndim(obs) == 4:
            if self._objects is None or self._objects.num_envs != len(obs):
                self._objects = ObjectEncoder(self.policy.env_id, len(obs))
            obs = self._objects(np.asarray(obs))  # (N, size)
        return self.policy.act(obs, deterministic=deterministic)

    def reset(self, rows=None) -> None:
        """Rows (default: all) of the frames given to `act` start new episodes: their next frames show no moves."""
        if self._objects is not None:
            self._objects.reset(rows)


def reads_frames(policy):
    """`policy` made to act on its game's frames where it observes objects (an `ObjectFramePolicy`); pixel and
    latent policies as they are."""
    return ObjectFramePolicy(policy) if getattr(policy, "obs_type", "pixels") == "objects" else policy
