"""Benchmark: how many steps the agents' learners need when perception is solved: Catch from its true state.

    python benchmarks/learner_state.py [--algo actor-critic] [--minutes 5] [--json results/learner_state_cpu.json]

The real Catch game, observed as a vector (paddle x; x relative to the paddle, height, speed and kind of the four
lowest items), so no pixels and no world model: what is left is the learner. Every `--eval-every` steps the agent
plays 8 episodes of at most 500 steps; at the end 20 full episodes. The scripted policy collects about 16.4 per
500 steps and 49.15 per full episode. Read with the dream's speed (~1,000 imagined steps/s on 2 cores,
benchmarks/dream_env.py): the steps a learner needs here are a floor for what it needs in a dream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import tyro
from common import cpu_name, write_results
from rich.console import Console
from rich.table import Table

from dreamworld.agents import PPO, ActorCriticConfig, DreamActorCritic, NetworkConfig, Policy, PPOConfig, evaluate
from dreamworld.envs import make_env

ITEMS = 4  # the lowest items the observation lists


class CatchState(gym.ObservationWrapper):
    """Catch observed through its true state: (1 + 4 * ITEMS,) floats in [-1, 1]."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1 + 4 * ITEMS,), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The game's state, read from the unwrapped game (the frame is ignored)."""
        game = self.env.unwrapped
        state = np.zeros(1 + 4 * ITEMS, np.float32)
        state[0] = game.player_x / 64
        for i, (x, y, speed, kind) in enumerate(sorted(game.items, key=lambda item: -item[1])[:ITEMS]):
            state[1 + 4 * i : 5 + 4 * i] = [(x - game.player_x) / 64, y / 64, speed / 2, 1.0 if kind else -1.0]
        return state


def catch_states(num_envs: int, max_episode_steps: int | None = None) -> gym.vector.SyncVectorEnv:
    """`num_envs` real Catch games observed through their state."""
    return gym.vector.SyncVectorEnv([lambda: CatchState(make_env("dreamworld/Catch-v0",
                                                                 max_episode_steps=max_episode_steps))
                                     for _ in range(num_envs)])


@dataclass
class Args:
    """Train one learner on Catch's true state for a fixed time; print its learning curve."""

    algo: Literal["actor-critic", "ppo"] = "actor-critic"
    """the learner (default hyperparameters of dreamworld train-agent, hidden width 128)"""
    minutes: float = 5.0
    """training time"""
    eval_every: int = 200_000
    """env steps between scorings"""
    threads: int = 1
    """CPU threads for torch"""
    seed: int = 0
    """seed of the networks and envs"""
    json: str | None = None
    """write the results here"""


def main(args: Args) -> None:
    """Train, score along the way, print the curve."""
    torch.set_num_threads(args.threads)
    envs, net = catch_states(32), NetworkConfig(hidden=128)
    trainer = (PPO(envs, PPOConfig(network=net), seed=args.seed) if args.algo == "ppo"
               else DreamActorCritic(envs, ActorCriticConfig(network=net), seed=args.seed))
    policy = Policy(trainer.net, "vector", "dreamworld/Catch-v0", algo=args.algo)
    curve, started, next_eval = [], time.perf_counter(), 0
    while time.perf_counter() - started < 60 * args.minutes:
        trainer.update()
        if trainer.steps >= next_eval:
            result = evaluate(policy, catch_states(8, 500), seed=args.seed + 1)
            curve.append({"steps": trainer.steps, "seconds": time.perf_counter() - started,
                          "return_per_500_steps": result.mean_return})
            next_eval += args.eval_every
    final = evaluate(policy, catch_states(20), seed=args.seed + 2)
    table = Table(title=f"{args.algo} on Catch's true state ({cpu_name()}, {args.threads} thread(s))")
    for column in ("env steps", "seconds", "return / 500 steps (scripted ~16.4)"):
        table.add_column(column, justify="right")
    for point in curve:
        table.add_row(f"{point['steps']:,}", f"{point['seconds']:.0f}", f"{point['return_per_500_steps']:.2f}")
    Console().print(table)
    print(f"20 full episodes: {final.mean_return:.2f} ± {np.std(final.returns):.2f} (scripted 49.15, random 4.45)")
    if args.json:
        write_results(args.json, {"algo": args.algo, "cpu": cpu_name(), "threads": args.threads,
                                  "minutes": args.minutes, "curve": curve, "final_return": final.mean_return,
                                  "final_return_std": float(np.std(final.returns)), "final_episodes": 20})


if __name__ == "__main__":
    main(tyro.cli(Args))
