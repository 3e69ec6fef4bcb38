"""Vector envs for agents, real and dreamed, that observe the same thing: game frames ("pixels"), the FSQ codes
of a world model's tokenizer ("latent") or a built-in game's object vectors ("objects"). A latent agent plays the
real game through `LatentObservations`, which encodes each real frame with the tokenizer of the world model it was
trained in; an objects agent through `ObjectObservation`, which reads each frame with the game's parser."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

from dreamworld import DREAM_ID
from dreamworld import checkpoint as ckpt
from dreamworld.dream.observations import FrameEncoder, check_obs_type, reads_frames
from dreamworld.model.world_model import WorldModel


class LatentObservations(gym.vector.VectorObservationWrapper):
    """A real pixel VectorEnv whose observations are the world model's codes of its frames."""

    def __init__(self, envs: gym.vector.VectorEnv, encoder: FrameEncoder):
        super().__init__(envs)
        self.encoder = encoder
        self.single_observation_space = encoder.space
        self.observation_space = gym.vector.utils.batch_space(encoder.space, envs.num_envs)

    def observations(self, observations: np.ndarray) -> np.ndarray:
        """Frames (N, H, W, 3) -> codes (N, tokens, dims)."""
        return self.encoder(observations)


def real_envs(env_id: str, num_envs: int, obs_type: str = "pixels", checkpoint: str | os.PathLike | None = None,
              max_episode_steps: int | None = None, render: bool = False, device: str = "cpu",
              model: WorldModel | None = None) -> gym.vector.VectorEnv:
    """`num_envs` copies of the real game `env_id` (make_env) in a SyncVectorEnv (NEXT_STEP autoreset); for
    obs_type "latent" the frames are encoded with the tokenizer of `model` or of the world model in `checkpoint`,
    for "objects" read into object vectors by the game's parser. `render` makes them render rgb_array frames (for
    videos)."""
    from dreamworld.envs import make_env
    from dreamworld.envs.games import ObjectObservation

    check_obs_type(obs_type)

    def thunk():
        env = make_env(env_id, render_mode="rgb_array" if render else None, max_episode_steps=max_episode_steps)
        return ObjectObservation(env, env_id) if obs_type == "objects" else env

    envs = gym.vector.SyncVectorEnv([thunk for _ in range(num_envs)])
    if obs_type != "latent":
        return envs
    if model is None and checkpoint is None:
        raise ValueError("a latent agent plays the real game through its world model's tokenizer: pass the "
                         "checkpoint it was trained in (--checkpoint RUN)")
    return LatentObservations(envs, FrameEncoder(model or ckpt.load(checkpoint, device)))


def dream_envs(checkpoint: str | os.PathLike, num_envs: int, obs_type: str = "latent",
               **kwargs) -> gym.vector.VectorEnv:
    """`num_envs` dreams of the world model in `checkpoint` as one `DreamVectorEnv` (gymnasium.make_vec)."""
    return gym.make_vec(DREAM_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", checkpoint=checkpoint,
                        obs_type=obs_type, **kwargs)


def frame_policy(policy, model: WorldModel | None = None, deterministic: bool = False):
    """A function frames (N, H, W, 3) -> actions (N, ...) for a saved policy (encoding the frames with `model`'s
    tokenizer, or with that of the policy's checkpoint, when the policy is latent; with the game's parser when it
    observes objects): what `collect` plays with."""
    if policy.obs_type in ("pixels", "objects"):
        policy = reads_frames(policy)
        return lambda frames: policy.act(frames, deterministic=deterministic)
    if policy.obs_type != "latent":
        raise ValueError(f"a policy observing {policy.obs_type!r} cannot play from game frames")
    if model is None:
        if not policy.config.get("checkpoint"):
            raise ValueError("this latent policy does not name its world model: pass the model that encodes frames")
        model = ckpt.load(policy.config["checkpoint"])
    encoder = FrameEncoder(model)
    return lambda frames: policy.act(encoder(frames), deterministic=deterministic)
