"""λ-returns over rollouts with episode boundaries, and DreamerV3's percentile return normaliser."""

from __future__ import annotations

import torch


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor, ended: torch.Tensor,
                   gamma: float, lam: float) -> torch.Tensor:
    """TD(λ) returns of T steps of B rollouts, computed backwards:

        R_t = r_t + γ (1 - terminated_t) [(1 - λ) v_{t+1} + λ R_{t+1}],  R_{t+1} := v_{t+1} where ended_t

    rewards, terminated, ended: (T, B); values: (T + 1, B), values[t] estimates the observation before step t and
    values[T] the one after the last step. `ended` marks steps after which the episode stopped (terminated or
    truncated): the recursion does not run into the next episode, and a truncated step bootstraps from the value
    of its final observation. With λ = 1 and no bootstrapping these are discounted returns; `returns - values[:-1]`
    is GAE(γ, λ). Returns (T, B).
    """
    T = rewards.shape[0]
    if values.shape[0] != T + 1 or terminated.shape != rewards.shape or ended.shape != rewards.shape:
        raise ValueError(f"lambda_returns wants rewards, terminated, ended of shape (T, B) and values of shape "
                         f"(T + 1, B); got {tuple(rewards.shape)}, {tuple(terminated.shape)}, {tuple(ended.shape)} "
                         f"and {tuple(values.shape)}")
    continues = 1.0 - terminated.float()  # (T, B)
    ended = ended.bool()
    returns = torch.empty_like(rewards, dtype=values.dtype)
    last = values[T]
    for t in range(T - 1, -1, -1):
        following = torch.where(ended[t], values[t + 1], last)  # (B,)
        last = rewards[t] + gamma * continues[t] * ((1 - lam) * values[t + 1] + lam * following)
        returns[t] = last
    return returns


class ReturnNormalizer:
    """DreamerV3's return scale: S = max(1, EMA of (P95 - P5) of the λ-returns). Advantages are divided by S, so
    large returns are scaled down while small ones (sparse rewards) are not blown up."""

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95):
        self.decay, self.low, self.high = decay, low, high
        self.range: float | None = None

    def update(self, returns: torch.Tensor) -> float:
        """Fold a batch of returns (any shape) into the EMA; returns the new scale S."""
        flat = returns.detach().float().flatten()  # (T*B,)
        spread = float(torch.quantile(flat, self.high) - torch.quantile(flat, self.low))
        self.range = spread if self.range is None else self.decay * self.range + (1 - self.decay) * spread
        return self.scale

    @property
    def scale(self) -> float:
        """The current scale S (1 before the first update)."""
        return max(1.0, self.range or 0.0)

    def state_dict(self) -> dict:
        """The EMA, for saving."""
        return {"range": self.range}

    def load_state_dict(self, state: dict) -> None:
        """Restore the EMA."""
        self.range = state.get("range")
