"""Benchmark: the project's learners against a referee. On a built-in game (it has the scripted policy N needs),
with the same observation and step budget, dreamworld's actor-critic and PPO and stable-baselines3's PPO each
train from scratch in the real game, then play the same full real episodes; the table gives each one's return and
its normalised score N = (agent - random) / (scripted - random). This is what says a dream-trained agent's
shortfall is the dream's, not the learner's.

    python benchmarks/referee.py [--env Catch] [--obs-type objects] [--steps 200000] [--episodes 20]
        [--learners actor-critic ppo sb3-ppo] [--json benchmarks/results/referee_catch_cpu.json]

The project's learners train as `dreamworld train-agent --train-in real` does, with its defaults (32 envs); SB3's
PPO with its own (MlpPolicy on object vectors, CnnPolicy on pixels; 8 envs, 2,048-step rollouts). Each stops at
the end of the rollout that reaches `--steps`, so the steps each took are reported (SB3's rollouts give it up to
16k more). Training time is the learning loop alone. Every learner is scored on the same seeds with sampled (not
greedy) actions, as `dreamworld` scores its agents.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import tyro
from common import save_results
from rich.console import Console
from rich.table import Table

from dreamworld.agents import evaluate, load
from dreamworld.dream.agent_envs import real_envs
from dreamworld.jobs.demo import policy_returns
from dreamworld.jobs.train_agent import AgentConfig, train_agent

Learner = Literal["actor-critic", "ppo", "sb3-ppo"]
SCORE_SEED = 30_000
"""seed of the scoring episodes (the i-th episode of every learner and reference starts from SCORE_SEED + i)"""


@dataclass
class Args:
    env: str = "Catch"
    """real game: a built-in one (Catch, Bricks, Cave)"""
    obs_type: Literal["objects", "pixels"] = "objects"
    """what every learner sees: the game parser's object vectors or the frames"""
    steps: int = AgentConfig.steps
    """env steps each learner trains for"""
    episodes: int = 20
    """full real episodes each learner (and the random and scripted policies) is scored on"""
    learners: list[Learner] = field(default_factory=lambda: ["actor-critic", "ppo", "sb3-ppo"])
    """who trains: dreamworld's actor-critic and PPO, stable-baselines3's PPO"""
    sb3_envs: int = 8
    """envs SB3's PPO steps together"""
    seed: int = 0
    """seed of every learner's networks and training envs"""
    threads: int = 2
    """torch CPU threads"""
    json: str | None = None
    """write the results here"""


class _SB3Policy:
    """An SB3 model behind the `act(obs, deterministic)` that `dreamworld.agents.evaluate` calls."""

    def __init__(self, model):
        self.model = model

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Observations (N, *obs_shape) -> actions (N,)."""
        return self.model.predict(obs, deterministic=deterministic)[0]


def _train_sb3(args: Args) -> tuple[_SB3Policy, int, float]:
    """SB3's PPO trained with its defaults in the real game: (policy, env steps taken, seconds learning)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from dreamworld.envs import make_env
    from dreamworld.envs.games import ObjectObservation

    def make():
        env = make_env(args.env)
        return ObjectObservation(env, args.env) if args.obs_type == "objects" else env

    envs = make_vec_env(make, n_envs=args.sb3_envs, seed=args.seed)
    policy = "MlpPolicy" if args.obs_type == "objects" else "CnnPolicy"
    model = PPO(policy, envs, seed=args.seed, device="cpu", verbose=0)
    started = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    seconds = time.perf_counter() - started
    envs.close()
    return _SB3Policy(model), model.num_timesteps, seconds


def _train_own(args: Args, algo: str, out: str) -> tuple[object, int, float]:
    """dreamworld's `algo` trained as `dreamworld train-agent --train-in real` does: (policy, env steps taken,
    seconds learning)."""
    cfg = AgentConfig(algo=algo, obs_type=args.obs_type, train_in="real", steps=args.steps, eval_env=args.env,
                      eval_every=10**9, final_episodes=0, video=False, seed=args.seed)
    summary = train_agent(None, out, cfg, wandb="disabled", progress=False)
    return load(out), summary["steps"], summary["seconds"]


def _score(args: Args, policy) -> list[float]:
    """Returns of `args.episodes` full real episodes, episode i seeded SCORE_SEED + i."""
    envs = real_envs(args.env, args.episodes, args.obs_type)
    returns = evaluate(policy, envs, seed=SCORE_SEED).returns
    envs.close()
    return returns


def main(args: Args) -> dict:
    """Score the references, train and score each learner; print the table and return (and write) the results."""
    if "sb3-ppo" in args.learners and importlib.util.find_spec("stable_baselines3") is None:
        raise SystemExit("the referee is stable-baselines3: pip install 'dreamworld[dev]' (or leave out sb3-ppo)")
    torch.set_num_threads(args.threads)
    references = {name: policy_returns(args.env, name, args.episodes, None, SCORE_SEED)
                  for name in ("random", "scripted")}
    low, high = statistics.mean(references["random"]), statistics.mean(references["scripted"])
    if high <= low:
        raise SystemExit(f"{args.env}'s scripted policy scores {high:.2f}, no better than random play ({low:.2f}): "
                         "N is undefined; raise --episodes")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for learner in args.learners:
            policy, steps, seconds = (_train_sb3(args) if learner == "sb3-ppo"
                                      else _train_own(args, learner, f"{tmp}/{learner}"))
            returns = _score(args, policy)
            rows.append({"learner": learner, "return": statistics.mean(returns), "std": statistics.pstdev(returns),
                         "normalised": (statistics.mean(returns) - low) / (high - low), "steps": steps,
                         "seconds": seconds, "steps_per_s": steps / seconds, "returns": returns})
    table = Table(title=f"{args.env}, {args.obs_type}, about {args.steps:,} real steps each, {args.episodes} full "
                        "episodes")
    for column in ("learner", "return", "N", "steps", "train seconds", "steps/s"):
        table.add_column(column, justify="left" if column == "learner" else "right")
    for name, returns in references.items():
        table.add_row(name, f"{statistics.mean(returns):.2f} ± {statistics.pstdev(returns):.2f}", "", "", "", "")
    for row in rows:
        table.add_row(row["learner"], f"{row['return']:.2f} ± {row['std']:.2f}", f"{row['normalised']:.2f}",
                      f"{row['steps']:,}", f"{row['seconds']:.0f}", f"{row['steps_per_s']:.0f}")
    Console().print(table)
    return save_results(args, settings={k: v for k, v in vars(args).items() if k != "json"},
                        references={k: {"return": statistics.mean(v), "returns": v} for k, v in references.items()},
                        learners=rows)


if __name__ == "__main__":
    main(tyro.cli(Args))
