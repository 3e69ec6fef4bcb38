"""Is the dream as rewarding and as deadly as the real game? Random play, the same protocol in both.

An agent trained in a dream learns the dream's game. If random play collects twice the reward in the dream, or
dies there half as often, the agent will learn a game easier than the real one and its real return will lag its
imagined one. `random_play` measures that gap before any agent is trained.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

from .agent_envs import dream_envs, real_envs


def _play(envs: gym.vector.VectorEnv, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One episode per env (cut at `steps`) with uniformly random actions: returns (N,) and terminated (N,)."""
    n = envs.num_envs
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    returns, terminated, alive = np.zeros(n), np.zeros(n, bool), np.ones(n, bool)
    for _ in range(steps):
        _, reward, term, trunc, _ = envs.step(envs.action_space.sample())
        returns += np.where(alive, reward, 0.0)
        terminated |= alive & term
        alive &= ~(term | trunc)
        if not alive.any():
            break
    envs.close()
    return returns, terminated


def random_play(checkpoint: str | os.PathLike, env_id: str, steps: int = 500, episodes: int = 16, seed: int = 0,
                device: str = "cpu") -> dict:
    """`episodes` random-play episodes of at most `steps` steps in the dream of `checkpoint` and in the real game
    `env_id`: mean return, share of episodes that terminated, and the dream/real return ratio (1 is calibrated)."""
    dream = _play(dream_envs(checkpoint, episodes, max_episode_steps=steps, device=device), steps, seed)
    real = _play(real_envs(env_id, episodes, "pixels", max_episode_steps=steps), steps, seed)
    dream_return, real_return = float(dream[0].mean()), float(real[0].mean())
    return {"steps": steps, "episodes": episodes, "dream_return": dream_return, "real_return": real_return,
            "return_ratio": dream_return / real_return if real_return else None,
            "dream_terminated": float(dream[1].mean()), "real_terminated": float(real[1].mean())}
