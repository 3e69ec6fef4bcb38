"""Record episodes from real envs into a dataset with a random, scripted or mixed policy, or with an agent."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from .dataset_writer import DatasetWriter
from .episode_buffer import EpisodeBuffer
from .make import make_env

Policy = Callable[[np.ndarray], object]
BatchPolicy = Callable[[np.ndarray], np.ndarray]
"""An agent: frames uint8 (N, H, W, 3) -> actions (N, ...)."""
POLICIES = ("random", "scripted", "mixed")


def make_policy(name: str, env: gym.Env, seed: int) -> Policy:
    """A policy acting in `env`: 'random' samples the action space; 'scripted' asks the game for its
    hand-written action (built-in games)."""
    if name == "random":
        space = env.action_space
        space.seed(seed)
        return lambda obs: space.sample()
    if name == "scripted":
        game = env.unwrapped
        if not hasattr(game, "scripted_action"):
            raise ValueError(f"{env.spec.id if env.spec else game} has no scripted policy: use --policy random")
        return lambda obs: game.scripted_action()
    raise ValueError(f"unknown policy {name!r}: choose one of {', '.join(POLICIES)}")


@dataclass
class CollectResult:
    """What a collection run did."""

    episodes_added: int
    steps_added: int
    episodes_total: int
    steps_total: int
    recovered: int


def collect(env_id: str, out: str | os.PathLike, steps: int, policy: str | BatchPolicy = "random", seed: int = 0,
            num_envs: int = 1, size: tuple[int, int] = (64, 64), progress: bool = True,
            epsilon: float = 0.0) -> CollectResult:
    """Play `env_id` until the dataset at `out` holds at least `steps` steps, storing each finished episode.

    Running it again after a kill continues where the stored episodes end. 'mixed' alternates random and
    scripted episodes (random play alone where the game has no scripted policy). `policy` may also be an agent: a
    callable from frames (num_envs, H, W, 3) to actions (num_envs, ...), asked once per step for all envs; its
    episodes are stored with policy "agent". A share `epsilon` of an agent's actions is replaced by random ones
    (exploration). Episodes still running when the target is reached are stored as truncated.
    """
    if steps < 1 or num_envs < 1:
        raise ValueError(f"--steps and --num-envs must be >= 1, got {steps} and {num_envs}")
    agent = policy if callable(policy) else None
    if agent is None and policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: choose one of {', '.join(POLICIES)}, or pass an agent")
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon is a share of random actions in [0, 1], got {epsilon}")
    policy = "agent" if agent is not None else policy
    envs = [make_env(env_id, size=size) for _ in range(num_envs)]
    spec_id = envs[0].spec.id if envs[0].spec else env_id
    if policy == "mixed" and not hasattr(envs[0].unwrapped, "scripted_action"):
        policy = "random"  # a game with no scripted policy (ALE, crafter, ...) mixes nothing in
    with DatasetWriter(out, spec_id, envs[0].observation_space.shape, envs[0].action_space,
                       render_fps=envs[0].metadata.get("render_fps")) as writer:
        start_episodes = writer.episodes
        start_steps = sum(e["steps"] for e in writer.manifest["episodes"])
        done_steps = start_steps
        bar = tqdm(total=steps, initial=min(start_steps, steps), desc=f"collect {spec_id}", unit="step",
                   disable=not progress)
        names = [policy if policy != "mixed" else ("random", "scripted")[(start_episodes + i) % 2]
                 for i in range(num_envs)]
        policies = {(i, n): make_policy(n, env, seed + i) for i, env in enumerate(envs)
                    for n in ({"random", "scripted"} if policy == "mixed" else {policy} - {"agent"})}
        explore = np.random.default_rng(seed + start_episodes)  # exploration of an agent
        for i, env in enumerate(envs if agent is not None else []):
            env.action_space.seed(seed * 7919 + start_episodes + i)
        episodes, policy_names = [], []  # the episode each env plays, and the policy playing it
        for i, env in enumerate(envs):
            obs, _ = env.reset(seed=seed * 100_003 + start_episodes + i)
            episodes.append(EpisodeBuffer(frames=[obs]))
            policy_names.append(names[i])
        while done_steps < steps:
            active = envs[: steps - done_steps]
            if agent is not None:
                batch = np.asarray(agent(np.stack([ep.frames[-1] for ep in episodes[: len(active)]])))
            for i, env in enumerate(active):
                ep = episodes[i]
                action = batch[i] if agent is not None else policies[(i, policy_names[i])](ep.frames[-1])
                if epsilon and explore.random() < epsilon:
                    action = env.action_space.sample()
                obs, reward, terminated, truncated, _ = env.step(action)
                ep.add(action, reward, terminated, truncated, obs)
                if terminated or truncated:
                    ep.write(writer, policy_names[i])
                    name = policy if policy != "mixed" else ("random", "scripted")[writer.episodes % 2]
                    obs, _ = env.reset()
                    episodes[i], policy_names[i] = EpisodeBuffer(frames=[obs]), name
            bar.update(min(num_envs, steps - done_steps))
            done_steps += min(num_envs, steps - done_steps)
        bar.close()
        for ep, env, name in zip(episodes, envs, policy_names, strict=True):
            if ep.actions:
                ep.truncated[-1] = True
                ep.write(writer, name)
            env.close()
        total_steps = sum(e["steps"] for e in writer.manifest["episodes"])
        return CollectResult(writer.episodes - start_episodes, total_steps - start_steps, writer.episodes,
                             total_steps, writer.recovered)
