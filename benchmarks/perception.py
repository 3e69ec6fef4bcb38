"""Benchmark: how many labelled frames a network needs to act like Catch's scripted policy, for each thing an
agent can observe (behaviour cloning: supervised, no reward, no credit assignment). It separates what perception
costs from what reinforcement learning costs: `learner.py` measures the two together.

    python benchmarks/perception.py --checkpoint runs/catch41 [--json results/perception_catch_avx2.json]
    python benchmarks/perception.py --checkpoint RUN --variants state "pixels:channels=16,32,32;lr=3e-4"

The scripted policy plays 16 games (with probability --explore a random action is taken instead, so the frames
also show states the scripted policy avoids); a quarter of the frames, spread over whole games, is labelled with
the scripted policy's action. Each variant trains the actor of `agents.ActorCritic` with cross-entropy on --frames
labelled frames and is scored on --heldout frames of other games (agreement with the scripted action) and by
playing 8 real games of 500 steps greedily (scripted ~16.4 per 500 steps, random ~1.5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
import tyro
from common import apply_settings, save_results
from learner import CATCH, CatchState, catch_state
from rich.console import Console
from rich.table import Table
from torch.nn import functional as F

from dreamworld import checkpoint as ckpt
from dreamworld.agents import ActorCritic, NetworkConfig, Policy, evaluate
from dreamworld.dream.agent_envs import FrameEncoder, real_envs
from dreamworld.envs import make_env

KEEP = 0.25  # share of the played frames recorded: the frames spread over whole games, not their first steps


@dataclass
class Args:
    """Clone Catch's scripted policy from each observation; print held-out agreement and real return."""

    variants: list[str] = field(
        default_factory=lambda: ["state", "latent", "latent:token_width=0", "pixels:channels=16,32,32"])
    """OBS or OBS:FIELD=VALUE;FIELD=VALUE with OBS state, pixels or latent and FIELDs of agents.NetworkConfig
    (lists as 16,32,32), e.g. "pixels:channels=16,32,32" or "latent:token_width=0"; lr=VALUE sets the learning rate"""
    checkpoint: str | None = None
    """world model whose tokenizer gives the latent codes (latent variants)"""
    frames: int = 40_000
    """labelled training frames"""
    heldout: int = 5_000
    """labelled frames of other games, for the agreement score"""
    explore: float = 0.2
    """chance of a random action while recording (the label stays the scripted action)"""
    updates: int = 3_000
    """gradient steps per variant"""
    batch: int = 128
    """frames per gradient step"""
    lr: float = 1e-3
    """Adam learning rate (a variant's lr= overrides it)"""
    score_every: int = 500
    """gradient steps between held-out scorings"""
    threads: int = 2
    """CPU threads for torch"""
    seed: int = 0
    """seed of the recordings and networks"""
    json: str | None = None
    """write the results here"""


def record(n_frames: int, explore: float, seed: int) -> dict[str, np.ndarray]:
    """Frames (N, 64, 64, 3), true states (N, S) and scripted actions (N,) of Catch played by the scripted policy
    with `explore` random actions."""
    games = [make_env(CATCH) for _ in range(16)]
    rng = np.random.default_rng(seed)
    obs = [game.reset(seed=seed * 1000 + i)[0] for i, game in enumerate(games)]
    frames, states, actions = [], [], []
    while len(frames) < n_frames:
        for i, game in enumerate(games):
            label = game.unwrapped.scripted_action()
            if rng.random() < KEEP:
                frames.append(obs[i])
                states.append(catch_state(game.unwrapped))
                actions.append(label)
            action = int(rng.integers(3)) if rng.random() < explore else label
            obs[i], _, terminated, truncated, _ = game.step(action)
            if terminated or truncated:
                obs[i] = game.reset()[0]
    return {"pixels": np.stack(frames[:n_frames]), "state": np.stack(states[:n_frames]),
            "actions": np.asarray(actions[:n_frames], np.int64)}


def parse_variant(text: str) -> tuple[str, NetworkConfig, float | None]:
    """"OBS:FIELD=VALUE;..." -> (obs, network config, learning rate or None); errors name the fix."""
    obs, _, settings = text.partition(":")
    if obs not in ("state", "pixels", "latent"):
        raise SystemExit(f"variant {text!r}: the observation must be state, pixels or latent (e.g. pixels:hidden=512)")
    cfg, lr = apply_settings(NetworkConfig(), list(filter(None, settings.split(";"))), text,
                             "pixels:channels=16,32,32;lr=5e-4")
    return obs, cfg, lr


def observation_space(obs: str, data: dict[str, np.ndarray]) -> gym.spaces.Box:
    """The Box an agent sees for `obs`, from the recorded arrays."""
    sample = data[obs]
    if obs == "pixels":
        return gym.spaces.Box(0, 255, sample.shape[1:], np.uint8)
    return gym.spaces.Box(-np.inf, np.inf, sample.shape[1:], np.float32)


def play_envs(obs: str, model) -> gym.vector.VectorEnv:
    """8 real Catch games of 500 steps observed as `obs`."""
    if obs == "state":
        return gym.vector.SyncVectorEnv([lambda: CatchState(make_env(CATCH, max_episode_steps=500))] * 8)
    return real_envs(CATCH, 8, obs, model=model, max_episode_steps=500)


def clone(variant: str, train: dict, held: dict, args: Args, model) -> dict:
    """Train one variant's actor on the labels; its agreement curve, final agreement and real return."""
    obs, cfg, lr = parse_variant(variant)
    torch.manual_seed(args.seed)
    net = ActorCritic(observation_space(obs, train), gym.spaces.Discrete(3), cfg)
    params = [*net.actor_encoder.parameters(), *net.actor_head.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr or args.lr)
    x, y = torch.from_numpy(train[obs]), torch.from_numpy(train["actions"])
    hx, hy = torch.from_numpy(held[obs]), torch.from_numpy(held["actions"])
    rng, curve, started = np.random.default_rng(args.seed), [], time.perf_counter()

    def agreement() -> float:
        with torch.no_grad():
            logits = torch.cat([net.dist(hx[i:i + 1024]).logits for i in range(0, len(hx), 1024)])  # (H, 3)
        return float((logits.argmax(-1) == hy).float().mean())

    for step in range(1, args.updates + 1):
        rows = torch.from_numpy(rng.integers(0, len(x), args.batch))
        loss = F.cross_entropy(net.dist(x[rows]).logits, y[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.score_every == 0:
            curve.append({"updates": step, "frames_seen": step * args.batch, "agreement": agreement()})
    seconds = time.perf_counter() - started
    policy = Policy(net, "vector" if obs == "state" else obs, CATCH)
    played = evaluate(policy, play_envs(obs, model), deterministic=True, seed=args.seed + 1)
    return {"variant": variant, "network": cfg.to_dict(), "lr": lr or args.lr, "seconds": seconds, "curve": curve,
            "agreement": curve[-1]["agreement"], "return_per_500_steps": played.mean_return}


def main(args: Args) -> None:
    """Record, encode, clone every variant, print the table."""
    torch.set_num_threads(args.threads)
    variants = [parse_variant(v)[0] for v in args.variants]
    if args.score_every > args.updates:
        raise SystemExit(f"--score-every {args.score_every} is more than --updates {args.updates}: nothing would be "
                         "scored; lower --score-every")
    if "latent" in variants and not args.checkpoint:
        raise SystemExit("latent variants see a world model's codes: pass --checkpoint RUN (a tiny Catch model)")
    model = ckpt.load(args.checkpoint) if "latent" in variants else None
    train, held = record(args.frames, args.explore, args.seed), record(args.heldout, args.explore, args.seed + 7)
    noop_share = float(np.mean(held["actions"] == 0))
    if model is not None:
        encoder = FrameEncoder(model)
        for data in (train, held):
            data["latent"] = np.concatenate([encoder(data["pixels"][i:i + 512])
                                             for i in range(0, len(data["pixels"]), 512)])  # (N, tokens, dims)
    results = [clone(v, train, held, args, model) for v in args.variants]
    table = Table(title=f"cloning Catch's scripted policy from {args.frames:,} frames "
                        f"(held-out no-op share {noop_share:.2f})")
    for column in ("variant", *[f"agree @{p['frames_seen'] // 1000}k" for p in results[0]["curve"]],
                   "return / 500", "seconds"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(r["variant"], *[f"{p['agreement']:.3f}" for p in r["curve"]],
                      f"{r['return_per_500_steps']:.2f}", f"{r['seconds']:.0f}")
    Console().print(table)
    save_results(args, checkpoint=args.checkpoint, frames=args.frames, heldout=args.heldout, explore=args.explore,
                 updates=args.updates, batch=args.batch, heldout_noop_share=noop_share, variants=results)


if __name__ == "__main__":
    main(tyro.cli(Args))
