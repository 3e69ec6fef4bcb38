"""Agents that learn in imagination and in real environments: an actor-critic over imagined trajectories
(DreamerV3-style λ-returns and return normalisation), PPO on any Gymnasium VectorEnv, saved policies.

`dreamworld.agents.load(AGENT)` returns a `Policy` whose `act(obs (N, *obs_shape), deterministic=False)` gives
actions (N, ...). Agents see environments only through the Gymnasium API.
"""

from .actor_critic import ActorCriticConfig, DreamActorCritic
from .evaluate import EvalResult, evaluate
from .networks import ActorCritic, NetworkConfig
from .policy import Policy, load
from .ppo import PPO, PPOConfig
from .returns import ReturnNormalizer, lambda_returns

__all__ = ["PPO", "ActorCritic", "ActorCriticConfig", "DreamActorCritic", "EvalResult",
           "NetworkConfig", "PPOConfig", "Policy", "ReturnNormalizer", "evaluate", "lambda_returns", "load"]
