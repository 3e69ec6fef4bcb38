"""Rolling a Gymnasium VectorEnv (real or dreamed) for T steps with the current policy, keeping track of
episode boundaries (NEXT_STEP autoreset) and of finished episodes' returns and lengths."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from .networks import ActorCritic


@dataclass
class Rollout:
    """T steps of B envs. Step t acts on obs[t]; obs[T] is the observation after the last step.

    `valid[t]` is False for steps that were no transition: under NEXT_STEP autoreset the step after an episode's
    end only restarts the env. Losses are averaged over valid steps."""

    obs: torch.Tensor  # (T + 1, B, *obs_shape)
    actions: torch.Tensor  # (T, B, ...) raw actions
    logp: torch.Tensor  # (T, B) log-probabilities of the actions when they were taken
    rewards: torch.Tensor  # (T, B)
    terminated: torch.Tensor  # (T, B) bool
    ended: torch.Tensor  # (T, B) bool: terminated or truncated
    valid: torch.Tensor  # (T, B) bool


class Runner:
    """Steps `envs` with a network's sampled actions and remembers where each env is between rollouts."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int = 0):
        self.envs = envs
        mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode != gym.vector.AutoresetMode.NEXT_STEP:
            raise ValueError(f"autoreset mode {mode} is not supported: make the vector env with autoreset_mode "
                             "NEXT_STEP (Gymnasium's default), whose step after an episode's end returns the final "
                             "observation first")
        self.obs, _ = envs.reset(seed=seed)
        self.restarting = np.zeros(envs.num_envs, bool)  # NEXT_STEP: the coming step restarts the env
        self.episode_return = np.zeros(envs.num_envs)
        self.episode_length = np.zeros(envs.num_envs, np.int64)
        self.finished: list[tuple[float, int]] = []  # (return, length) of episodes ended since the last `pop`

    @torch.no_grad()
    def rollout(self, net: ActorCritic, steps: int) -> Rollout:
        """Play `steps` steps in every env with actions sampled from `net`."""
        obs, actions, logps, rewards, terminated, ended, valid = [net.obs_tensor(self.obs)], [], [], [], [], [], []
        for _ in range(steps):
            dist = net.dist(obs[-1])
            raw = dist.sample()  # (B,) or (B, A)
            logps.append(dist.log_prob(raw))
            next_obs, reward, term, trunc, _ = self.envs.step(net.env_actions(raw))
            done = np.logical_or(term, trunc)
            valid.append(torch.as_tensor(~self.restarting))
            self.episode_return += np.where(self.restarting, 0.0, reward)
            self.episode_length += ~self.restarting
            for i in np.flatnonzero(done & ~self.restarting):
                self.finished.append((float(self.episode_return[i]), int(self.episode_length[i])))
                self.episode_return[i], self.episode_length[i] = 0.0, 0
            self.restarting = done  # (B,) the next step of these envs only restarts them
            actions.append(raw)
            rewards.append(torch.as_tensor(reward, dtype=torch.float32))
            terminated.append(torch.as_tensor(term))
            ended.append(torch.as_tensor(done))
            obs.append(net.obs_tensor(next_obs))
            self.obs = next_obs
        device = net.device
        return Rollout(torch.stack(obs), torch.stack(actions), torch.stack(logps),
                       torch.stack(rewards).to(device), torch.stack(terminated).to(device),
                       torch.stack(ended).to(device), torch.stack(valid).to(device))

    def pop_episodes(self) -> list[tuple[float, int]]:
        """(return, length) of the episodes finished since the last call."""
        finished, self.finished = self.finished, []
        return finished


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the entries where `mask` is True."""
    mask = mask.float()
    return (x * mask).sum() / mask.sum().clamp_min(1.0)
