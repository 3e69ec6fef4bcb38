"""PPO (clipped objective, GAE, several epochs of minibatches) on any Gymnasium VectorEnv, real or dreamed.

Read top to bottom as in CleanRL's ppo.py: roll `num_steps` steps of every env, compute GAE advantages (λ-returns
minus values), then `update_epochs` passes of minibatch updates with the clipped policy loss, the value loss and
an entropy bonus. Steps that only restart an env (NEXT_STEP autoreset) are left out of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import torch

from .networks import ActorCritic, NetworkConfig
from .returns import lambda_returns
from .rollout import Runner


@dataclass
class PPOConfig:
    """PPO hyperparameters (CleanRL's defaults for small envs)."""

    num_steps: int = 128
    """steps of each env per rollout"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """λ of GAE"""
    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 4
    """passes over each rollout"""
    clip_coef: float = 0.2
    """policy ratio clip"""
    ent_coef: float = 0.01
    """entropy bonus"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    lr: float = 2.5e-4
    """Adam learning rate"""
    max_grad_norm: float = 0.5
    """gradient-norm clip"""
    norm_adv: bool = True
    """normalise advantages per minibatch"""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    """actor and critic sizes"""


class PPO:
    """Trains an `ActorCritic` on `envs` with PPO; one `update()` per rollout."""

    def __init__(self, envs: gym.vector.VectorEnv, cfg: PPOConfig, net: ActorCritic | None = None,
                 device: str = "cpu", seed: int = 0):
        torch.manual_seed(seed)
        self.cfg = cfg
        self.net = net or ActorCritic(envs.single_observation_space, envs.single_action_space, cfg.network)
        self.net.to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, eps=1e-5)
        self.runner = Runner(envs, seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.steps = 0  # env steps taken, num_envs per rollout step

    def update(self) -> dict:
        """One rollout and its PPO epochs; returns the update's metrics."""
        cfg, net = self.cfg, self.net
        # 1. roll the envs with the current policy
        ro = self.runner.rollout(net, cfg.num_steps)
        T, B = ro.rewards.shape
        self.steps += T * B
        # 2. GAE: advantages = λ-returns - values
        with torch.no_grad():
            values = net.value(ro.obs.flatten(0, 1)).view(T + 1, B)  # ((T+1)*B,) -> (T+1, B)
        returns = lambda_returns(ro.rewards, values, ro.terminated, ro.ended, cfg.gamma, cfg.gae_lambda)
        advantages = returns - values[:-1]  # (T, B)
        # 3. flatten the batch, keeping real transitions only
        keep = ro.valid.flatten()  # (T*B,)
        b_obs = ro.obs[:-1].flatten(0, 1)[keep]  # (M, *obs_shape)
        b_actions = ro.actions.flatten(0, 1)[keep]  # (M, ...)
        b_logp, b_adv = ro.logp.flatten()[keep], advantages.flatten()[keep]  # (M,) each
        b_returns, b_values = returns.flatten()[keep], values[:-1].flatten()[keep]  # (M,) each
        size = len(b_obs)
        minibatch = max(1, size // cfg.num_minibatches)
        # 4. epochs of minibatch updates
        clipfracs, stats = [], {}
        for _ in range(cfg.update_epochs):
            order = torch.randperm(size, generator=self.generator).to(b_obs.device)
            for start in range(0, size, minibatch):
                idx = order[start : start + minibatch]
                dist = net.dist(b_obs[idx])
                logratio = dist.log_prob(b_actions[idx]) - b_logp[idx]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item())
                adv = b_adv[idx]
                if cfg.norm_adv and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                v_loss = 0.5 * ((net.value(b_obs[idx]) - b_returns[idx]) ** 2).mean()
                entropy = dist.entropy().mean()
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                self.opt.step()
                stats = {"policy_loss": pg_loss.item(), "value_loss": v_loss.item(), "entropy": entropy.item(),
                         "approx_kl": approx_kl.item()}
        explained = 1 - torch.var(b_returns - b_values) / torch.var(b_returns).clamp_min(1e-8) if size > 1 else 0.0
        return stats | {"clipfrac": sum(clipfracs) / max(len(clipfracs), 1), "explained_variance": float(explained),
                        "lambda_return": b_returns.mean().item() if size else 0.0,
                        "reward_per_step": ro.rewards[ro.valid].mean().item() if size else 0.0}
