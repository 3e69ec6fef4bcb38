"""Score a policy: one episode in each env of a VectorEnv (real or dreamed), mean return and length."""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np


@dataclass
class EvalResult:
    """Returns and lengths of the played episodes, whether each ended by termination (not truncation), and the
    frames of the first one when recorded."""

    returns: list[float]
    lengths: list[int]
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8 of env 0's episode
    terminated: list[bool] = field(default_factory=list)

    @property
    def mean_return(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))

    @property
    def mean_length(self) -> float:
        """Mean episode length."""
        return float(np.mean(self.lengths))


def evaluate(policy, envs: gym.vector.VectorEnv, deterministic: bool = False, seed: int = 0,
             record: bool = False) -> EvalResult:
    """Play one episode in each of the `envs.num_envs` envs with `policy.act(obs, deterministic)`; envs that
    finish early keep stepping unscored until the last one ends. With `record` (and render_mode="rgb_array"),
    keep the frames of env 0's episode."""
    if record and envs.render_mode != "rgb_array":
        raise ValueError(f"recording needs envs made with render_mode='rgb_array', got {envs.render_mode!r}")
    obs, _ = envs.reset(seed=seed)
    n = envs.num_envs
    done, ended, returns, lengths = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n), np.zeros(n, np.int64)
    frames = [envs.render()[0]] if record else []
    while not done.all():
        obs, rewards, terminated, truncated, _ = envs.step(policy.act(obs, deterministic=deterministic))
        returns += np.where(done, 0.0, rewards)
        lengths += ~done
        if record and not done[0]:
            frames.append(envs.render()[0])
        ended |= ~done & terminated
        done |= np.logical_or(terminated, truncated)
    return EvalResult(returns.tolist(), lengths.tolist(), np.stack(frames) if record else None, ended.tolist())
