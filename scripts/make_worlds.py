"""Remake the worlds shipped in dreamworld/worlds/ with the default recipe, nothing per game: for each built-in game,
collect 15k random + 15k scripted real steps, train the default world model for 15 minutes (`dreamworld train
--data DATA --out RUN`), train an agent on object observations in its dream, export both in float16, then score
the shipped files as `dreamworld evaluate` does (metrics.json, real | dream GIF, closed-loop video) and play 300
frames of `dreamworld play` with the agent in control beside the real game (a screenshot for docs/).

    python scripts/make_worlds.py                  # all three games, about 35 minutes each on a 2-core CPU
    python scripts/make_worlds.py --games Catch
    python scripts/make_worlds.py --quick          # every stage on toy budgets (a smoke test)

Every stage can be interrupted: running the same command again continues (datasets, world models and agents in
--work are reused or resumed).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import torch
import tyro

import dreamworld
from dreamworld import checkpoint as ckpt
from dreamworld import worlds
from dreamworld.cli.model import EvaluateArgs, run_evaluate
from dreamworld.console import print_table
from dreamworld.io import write_json
from dreamworld.jobs.demo import collect_mixed, train_or_resume
from dreamworld.jobs.train_agent import AgentConfig, train_agent
from dreamworld.train.config import DynamicsPhase, TerminationPhase, TokenizerPhase, TrainConfig


@dataclass
class MakeWorldsArgs:
    """Train, export and score the shipped worlds."""

    games: tuple[str, ...] = ("Bricks", "Cave", "Catch")
    """built-in games to make worlds of (each ships as dreamworld/worlds/<game in lower case>)"""
    random_steps: int = 15_000
    """real steps of random play per game"""
    scripted_steps: int = 15_000
    """real steps of scripted play per game"""
    minutes: float | None = 15.0
    """world-model training budget per game (`dreamworld train --minutes`)"""
    steps: int | None = None
    """world-model optimisation steps per game instead of --minutes (reproducible, not time-bound)"""
    agent_obs: Literal["objects", "latent", "pixels"] = "objects"
    """what the shipped agent observes (objects: the game's sprites read off the dream's frames)"""
    agent_minutes: float | None = 10.0
    """budget of the agent trained in each world's dream"""
    agent_steps: int = 2_000_000
    """cap on the agent's imagined steps (the time budget usually ends it first)"""
    eval_samples: int = 128
    """open-loop rollouts scored per world (`dreamworld evaluate --samples`)"""
    closed_loop_episodes: int = 8
    """closed-loop episodes per graded policy, in the dream and in the real game"""
    play_frames: int = 300
    """frames of `dreamworld play` (agent in control, real game beside the dream) before the screenshot"""
    work: str = "runs/worlds"
    """where datasets, training runs, agents and reports are kept"""
    out: str = str(worlds.ROOT)
    """where the worlds are exported (the package folder, so they ship in the wheel)"""
    docs: str | None = "docs/worlds"
    """where each world's real | dream GIF and play screenshot are copied for the README (None: not copied)"""
    wandb: Literal["offline", "online", "disabled"] = "offline"
    """experiment tracking of training and agent runs"""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)"""
    seed: int = 0
    """seed of collection, training and scoring"""
    quick: bool = False
    """toy budgets for every stage (a smoke test; its numbers mean nothing)"""


QUICK = {"random_steps": 300, "scripted_steps": 300, "minutes": None, "steps": 6, "agent_minutes": None,
         "agent_steps": 64, "eval_samples": 4, "closed_loop_episodes": 1, "play_frames": 8}
"""The settings `quick` overrides."""


def _agent_config(args: MakeWorldsArgs) -> AgentConfig:
    """The shipped agent's training: the default learner on `agent_obs`, within the agent budget."""
    cfg = AgentConfig(obs_type=args.agent_obs, steps=args.agent_steps, minutes=args.agent_minutes, seed=args.seed)
    if args.quick:
        cfg = replace(cfg, num_envs=4, eval_every=1_000_000, eval_episodes=1, final_episodes=2, eval_max_steps=40,
                      max_episode_steps=40, video=False)
    return cfg


def _train_config(args: MakeWorldsArgs) -> TrainConfig:
    """`dreamworld train`'s defaults with the budget and seed of this run (toy batches with `quick`)."""
    cfg = TrainConfig(minutes=None if args.steps else args.minutes, steps=args.steps, seed=args.seed)
    if args.quick:
        cfg = replace(cfg, tokenizer=TokenizerPhase(batch_size=2), termination=TerminationPhase(batch_size=8),
                      dynamics=DynamicsPhase(batch_size=2), warmup_steps=1, eval_samples=2)
    return cfg


def _screenshot(world: Path, out: Path, frames: int, seed: int) -> dict:
    """Play `frames` frames of the dream headless with the world's agent in control and the real game beside it
    (keys V then M); save the window as `out`. Returns the play statistics."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from dreamworld.cli.play import PlayArgs, run_play
    from dreamworld.play.app import PlayOptions

    window = PlayOptions(fps=0, script=f"v,m,wait*{frames}", frames=frames, screenshot=str(out))
    stats = run_play(PlayArgs(checkpoint=str(world), agent=str(world / worlds.AGENT), seed=seed, window=window))
    return {"frames": stats.frames, "fps": stats.fps}


def make_world(game: str, args: MakeWorldsArgs) -> dict:
    """Every stage for one game; returns what goes into the world's metrics.json."""
    name, work = game.lower(), Path(args.work) / game.lower()
    data, run, agent, report = work / "data", work / "world_model", work / "agent", work / "report"
    ds = collect_mixed(game, data, args.random_steps, args.scripted_steps, seed=args.seed)
    train_cfg = _train_config(args)
    train_or_resume(data, run, train_cfg, args.wandb)
    agent_info = json.loads((agent / ckpt.CONFIG).read_text())["info"] if (agent / ckpt.CONFIG).is_file() else {}
    if "final_real_return" not in agent_info:  # not trained yet, or interrupted
        agent_info = train_agent(str(run), str(agent), _agent_config(args), wandb=args.wandb)
    world = worlds.export_world(run, Path(args.out) / name, dtype="float16", agent=agent)
    size = worlds.size_bytes(world)
    if size > worlds.MAX_BYTES:
        raise ValueError(f"the {name} world takes {size / 1e6:.1f} MB, over the {worlds.MAX_BYTES / 1e6:.1f} MB cap")
    run_evaluate(EvaluateArgs(checkpoint=str(world), data=str(data), out=str(report), samples=args.eval_samples,
                              holdout=train_cfg.holdout, closed_loop_episodes=args.closed_loop_episodes))
    played = _screenshot(world, report / "play.png", args.play_frames, args.seed)
    if args.docs:
        Path(args.docs).mkdir(parents=True, exist_ok=True)
        shutil.copy(report / "rollout.gif", Path(args.docs) / f"{name}.gif")
        shutil.copy(report / "play.png", Path(args.docs) / f"{name}_play.png")
    metrics = json.loads((report / "metrics.json").read_text()) | {
        "world": name, "env_id": ds.env_id, "weights": "float16", "size_bytes": size,
        "agent": {"obs_type": args.agent_obs, "steps": agent_info.get("steps"),
                  "real_return": agent_info.get("final_real_return"), "episodes": agent_info.get("final_episodes"),
                  "scored_real_return": agent_info.get("agent/real_return"),
                  "scored_imagined_return": agent_info.get("agent/imagined_return")},
        "play": played,
        "data": {"random_steps": args.random_steps, "scripted_steps": args.scripted_steps, "episodes": len(ds)},
        "made_with": {"script": "scripts/make_worlds.py", "settings": asdict(args), "train": asdict(train_cfg),
                      "world_model_info": ckpt.read_config(run)[1], "dreamworld": dreamworld.__version__,
                      "torch": torch.__version__},
    }
    write_json(world / "metrics.json", metrics)
    return metrics


def _row(m: dict) -> str:
    """One line of the summary table for a world's metrics."""
    recall = m.get("object_recall", {})
    closed = m.get("closed_loop", {})
    return (f"{m['size_bytes'] / 1e6:.1f} MB, object recall h=1 {recall.get('1')}, h=16 {recall.get('16')}, "
            f"rank correlation {closed.get('rank_correlation')}, agent real return {m['agent']['real_return']}")


def main(args: MakeWorldsArgs) -> None:
    """Make every world and print one row per world."""
    if args.quick:
        args = replace(args, **QUICK)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for game in args.games:
        m = make_world(game, args)
        rows[m["world"]] = _row(m)
    print_table(f"worlds in {args.out}", rows)


if __name__ == "__main__":
    main(tyro.cli(MakeWorldsArgs))
