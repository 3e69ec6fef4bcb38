"""Is the dream as rewarding and as deadly as the real game? Random play, the same protocol in both.

An agent trained in a dream learns the dream's game. If random play collects twice the reward in the dream, or
dies there half as often, the agent will learn a game easier than the real one and its real return will lag its
imagined one. `random_play` measures that gap before any agent is trained.
"""

from __future__ import annotations

import os

import gymnasium as gym

from dreamworld.agents import evaluate

from .agent_envs import dream_envs, real_envs


class RandomActions:
    """A policy that acts uniformly at random in `space` (seeded), for `dreamworld.agents.evaluate`."""

    def __init__(self, space: gym.Space, seed: int):
        self.space = space
        self.space.seed(seed)

    def act(self, obs, deterministic: bool = False):
        """One random action per row of `obs`."""
        return self.space.sample()


def _play(envs: gym.vector.VectorEnv, seed: int) -> tuple[float, float, float]:
    """One random-play episode per env: mean return, share of episodes that terminated, mean length."""
    result = evaluate(RandomActions(envs.action_space, seed), envs, seed=seed)
    envs.close()
    episodes = len(result.lengths)
    return result.mean_return, sum(result.terminated) / episodes, sum(result.lengths) / episodes


def random_play(checkpoint: str | os.PathLike, env_id: str, steps: int = 500, episodes: int = 16, seed: int = 0,
                device: str = "cpu") -> dict:
    """`episodes` random-play episodes of at most `steps` steps in the dream of `checkpoint` and in the real game
    `env_id`: mean return, share of episodes that terminated, mean length, and the dream/real return ratio (1 is
    calibrated)."""
    dream_return, dream_terminated, dream_length = _play(
        dream_envs(checkpoint, episodes, max_episode_steps=steps, device=device), seed)
    real_return, real_terminated, real_length = _play(
        real_envs(env_id, episodes, "pixels", max_episode_steps=steps), seed)
    return {"steps": steps, "episodes": episodes, "dream_return": dream_return, "real_return": real_return,
            "return_ratio": dream_return / real_return if real_return else None,
            "dream_terminated": dream_terminated, "real_terminated": real_terminated,
            "dream_length": dream_length, "real_length": real_length}
