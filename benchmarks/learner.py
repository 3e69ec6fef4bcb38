"""Benchmark: how many real Catch steps a learner needs when it sees the game's true state, and when it sees what
an agent in a dream sees (a world model's latent codes, or frames), with no dream involved.

    python benchmarks/learner.py --obs state [--algo ppo] [--minutes 5] [--json results/learner_state_ppo_cpu.json]
    python benchmarks/learner.py --obs state --life-loss-ends --steps 5000000 --minutes 12
    python benchmarks/learner.py --obs latent --checkpoint RUN [--algo ppo] [--minutes 15]
    python benchmarks/learner.py --obs pixels --algo ppo --ppo.network.channels 16 32 32
    python benchmarks/learner.py --obs model-state --checkpoint RUN --algo ppo --threads 2

`state`: paddle x; x relative to the paddle, height, speed and kind of the four lowest items. `latent`: the FSQ codes
of the real frames through the tokenizer of the world model in RUN, as `train-agent` feeds them. `pixels`: the
frames, through the agents' CNN. `model-state`: for each token, the dynamics' state that predicted it beside its
code (what Dreamer's actor sees: the model's belief, history included, not one frame). Every `--eval-every` steps
the agent plays 8 episodes of at most 500 steps; at the end 20 full episodes. The scripted policy collects about
16.4 per 500 steps and 49.15 per full episode. The gap between the state curve and the others is what perception
costs the learner; the latent curve is a floor for what the same learner needs in a dream (which runs 1,100-2,200
steps/s on 2 cores, benchmarks/dream_env.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import tyro
from common import cpu_name, write_results
from rich.console import Console
from rich.table import Table

from dreamworld import checkpoint as ckpt
from dreamworld.agents import PPO, ActorCriticConfig, DreamActorCritic, Policy, PPOConfig, evaluate
from dreamworld.dream.agent_envs import real_envs
from dreamworld.envs import make_env
from dreamworld.model.precision import autocast
from dreamworld.model.world_model import WorldModel

ITEMS = 4  # the lowest items the state lists
CATCH = "dreamworld/Catch-v0"


class CatchState(gym.ObservationWrapper):
    """Catch observed through its true state: (1 + 4 * ITEMS,) floats in [-1, 1]."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1 + 4 * ITEMS,), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The game's state, read from the unwrapped game (the frame is ignored)."""
        return catch_state(self.env.unwrapped)


def catch_state(game) -> np.ndarray:
    """The true state (1 + 4 * ITEMS,) of an unwrapped Catch game: paddle x; x relative to the paddle, height,
    speed and kind of the ITEMS lowest items."""
    state = np.zeros(1 + 4 * ITEMS, np.float32)
    state[0] = game.player_x / 64
    for i, (x, y, speed, kind) in enumerate(sorted(game.items, key=lambda item: -item[1])[:ITEMS]):
        state[1 + 4 * i : 5 + 4 * i] = [(x - game.player_x) / 64, y / 64, speed / 2, 1.0 if kind else -1.0]
    return state


class LifeLossEnds(gym.Wrapper):
    """Training signal only (DQN's episodic life): a step that costs a life reports `terminated`, and the reset that
    follows continues the same game (whatever seed it is given), so the learner's returns stop at a lost life
    without the game restarting."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._lives, self._carry_on = None, None  # lives after the last step; (obs, info) a reset continues from

    def reset(self, **kwargs):
        """A new game, or the same game after a lost life."""
        if self._carry_on is not None:
            (obs, info), self._carry_on = self._carry_on, None
            return obs, info
        obs, info = self.env.reset(**kwargs)
        self._lives = info["lives"]
        return obs, info

    def step(self, action):
        """The game's step, with `terminated` also set when a life was lost."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        lost = info["lives"] < self._lives
        if lost and not (terminated or truncated):
            self._carry_on = (obs, info)
        terminated = terminated or lost
        self._lives = info["lives"]
        return obs, reward, terminated, truncated, info


class ModelStateObservations(gym.vector.VectorWrapper):
    """Real Catch games followed by a world model: the observation of frame t+1 is, for each of its N tokens, the
    dynamics state h_t (C,) that predicted it beside its FSQ code (dims,). A new episode starts from its first frame
    repeated over the context window with no-op actions between the copies."""

    def __init__(self, envs: gym.vector.VectorEnv, model: WorldModel):
        super().__init__(envs)
        self.model, model.precision = model, "bfloat16"
        shape = (model.tokenizer.tokens_per_frame, model.cfg.dynamics.d_model + len(model.cfg.tokenizer.levels))
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, envs.num_envs)
        self.ended = np.zeros(envs.num_envs, bool)

    def _start(self, frames: np.ndarray, first_frame: int):
        """Caches, tokens (b, N) and last states (b, N, C) of contexts made of each first frame repeated."""
        tokens = self.model.encode(torch.from_numpy(frames))  # (b, N)
        cache = self.model.dynamics.empty_cache()
        cache.frame = first_frame
        noop = self.model.actions_tensor(np.zeros(len(frames), np.int64))
        with autocast(self.model.precision, self.model.device):
            for _ in range(self.model.cfg.dynamics.context_frames - 1):
                states = self.model.dynamics.step(tokens, noop, cache)  # (b, N, C)
        return cache, tokens, states.float()

    def _observe(self) -> np.ndarray:
        codes = self.model.tokenizer.fsq.indices_to_codes(self.tokens)  # (B, N, dims)
        return torch.cat((self.states, codes), -1).numpy()  # (B, N, C + dims)

    @torch.no_grad()
    def reset(self, **kwargs):
        frames, info = self.env.reset(**kwargs)
        self.cache, self.tokens, self.states = self._start(frames, 0)
        self.ended[:] = False
        return self._observe(), info

    @torch.no_grad()
    def step(self, actions):
        frames, rewards, terminated, truncated, info = self.env.step(actions)
        with autocast(self.model.precision, self.model.device):
            self.states = self.model.dynamics.step(self.tokens, self.model.actions_tensor(actions), self.cache).float()
        self.tokens = self.model.encode(torch.from_numpy(frames))  # (B, N)
        rows = np.flatnonzero(self.ended)  # these envs reset on this step (NEXT_STEP autoreset)
        if len(rows):
            first = self.cache.frame - (self.model.cfg.dynamics.context_frames - 1)  # their windows line up
            cache, tokens, states = self._start(frames[rows], first)
            index = torch.as_tensor(rows)
            self.cache.replace_rows(index, cache)
            self.tokens[index], self.states[index] = tokens, states
        self.ended = terminated | truncated
        return self._observe(), rewards, terminated, truncated, info


@dataclass
class Args:
    """Train one learner on real Catch for a fixed time, seeing its true state, a world model's codes or frames;
    print its learning curve."""

    obs: Literal["state", "latent", "pixels", "model-state"] = "state"
    """what the learner sees: the game's true state, the latent codes of the world model in --checkpoint, frames,
    or that model's dynamics states beside the codes"""
    checkpoint: str | None = None
    """world model that encodes the frames (--obs latent, model-state)"""
    algo: Literal["actor-critic", "ppo"] = "actor-critic"
    """the learner"""
    minutes: float = 5.0
    """training time"""
    steps: int | None = None
    """stop at this many env steps instead, if sooner"""
    eval_every: int = 250_000
    """env steps between scorings (the first scoring comes at 100k)"""
    threads: int = 1
    """CPU threads for torch"""
    seed: int = 0
    """seed of the networks and envs"""
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    """actor-critic hyperparameters (train-agent's defaults)"""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyperparameters (train-agent's defaults)"""
    life_loss_ends: bool = False
    """training episodes end at each lost life (the game goes on; scoring plays whole games)"""
    json: str | None = None
    """write the results here"""


def catch_envs(args: Args, num_envs: int, model, max_episode_steps: int | None = None,
               training: bool = False) -> gym.vector.VectorEnv:
    """`num_envs` real Catch games observed as --obs says (`training`: with --life-loss-ends applied)."""
    if args.obs == "state":
        def thunk():
            env = make_env(CATCH, max_episode_steps=max_episode_steps)
            return CatchState(LifeLossEnds(env) if training and args.life_loss_ends else env)
        return gym.vector.SyncVectorEnv([thunk for _ in range(num_envs)])
    if args.obs == "model-state":
        return ModelStateObservations(real_envs(CATCH, num_envs, max_episode_steps=max_episode_steps), model)
    return real_envs(CATCH, num_envs, args.obs, model=model, max_episode_steps=max_episode_steps)


def main(args: Args) -> None:
    """Train, score along the way, print the curve."""
    if args.life_loss_ends and args.obs != "state":
        raise SystemExit("--life-loss-ends is implemented for --obs state only")
    if args.obs in ("latent", "model-state") and not args.checkpoint:
        raise SystemExit(f"--obs {args.obs} sees through a world model: pass --checkpoint RUN (a tiny Catch model)")
    torch.set_num_threads(args.threads)
    model = ckpt.load(args.checkpoint) if args.obs in ("latent", "model-state") else None
    envs = catch_envs(args, 32, model, training=True)
    trainer = (PPO(envs, args.ppo, seed=args.seed) if args.algo == "ppo"
               else DreamActorCritic(envs, args.actor_critic, seed=args.seed))
    obs_type = "vector" if args.obs in ("state", "model-state") else args.obs
    policy = Policy(trainer.net, obs_type, CATCH, args.checkpoint, algo=args.algo)
    curve, started, next_eval = [], time.perf_counter(), 100_000
    while time.perf_counter() - started < 60 * args.minutes and trainer.steps < (args.steps or float("inf")):
        trainer.update()
        if trainer.steps >= next_eval:
            result = evaluate(policy, catch_envs(args, 8, model, 500), seed=args.seed + 1)
            curve.append({"steps": trainer.steps, "seconds": time.perf_counter() - started,
                          "return_per_500_steps": result.mean_return})
            next_eval = (next_eval // args.eval_every + 1) * args.eval_every
    final = evaluate(policy, catch_envs(args, 20, model), seed=args.seed + 2)
    table = Table(title=f"{args.algo} on Catch, observing {args.obs} ({cpu_name()}, {args.threads} thread(s))")
    for column in ("env steps", "seconds", "return / 500 steps (scripted ~16.4)"):
        table.add_column(column, justify="right")
    for point in curve:
        table.add_row(f"{point['steps']:,}", f"{point['seconds']:.0f}", f"{point['return_per_500_steps']:.2f}")
    Console().print(table)
    print(f"{trainer.steps:,} steps; 20 full episodes: {final.mean_return:.2f} ± {np.std(final.returns):.2f} "
          "(scripted 49.15, random 4.45)")
    if args.json:
        config = asdict(args.ppo if args.algo == "ppo" else args.actor_critic)
        write_results(args.json, {"obs": args.obs, "checkpoint": args.checkpoint, "algo": args.algo, "config": config,
                                  "life_loss_ends": args.life_loss_ends, "cpu": cpu_name(), "threads": args.threads,
                                  "minutes": args.minutes,
                                  "steps": trainer.steps, "curve": curve, "final_return": final.mean_return,
                                  "final_return_std": float(np.std(final.returns)), "final_episodes": 20})


if __name__ == "__main__":
    main(tyro.cli(Args))
