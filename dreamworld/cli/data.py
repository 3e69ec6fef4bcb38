"""`dreamworld collect` and `dreamworld dataset`: record real play, inspect and export datasets."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from dreamworld.console import print_table
from dreamworld.media import upscale, write_video


@dataclass
class CollectArgs:
    """Record episodes of a real env into a dataset directory (continues an existing one)."""

    env: str = "Bricks"
    """env id: a built-in game (Bricks, Cave, Catch), an Atari id (ALE/Pong-v5), crafter, or any Gymnasium pixel env"""
    steps: int = 10_000
    """collect until the dataset holds this many steps (running again after a kill continues)"""
    out: str = "data/bricks"
    """dataset directory (created if new)"""
    policy: str = "mixed"
    """who plays: random, scripted (the game's own policy), mixed (alternating episodes of both; random play alone
    where the game has no scripted policy), or the directory of a trained agent (dreamworld train-agent)"""
    epsilon: float = 0.0
    """share of random actions mixed into an agent's (exploration)"""
    seed: int = 0
    """seed of the envs and the random policy"""
    num_envs: int = 1
    """envs stepped side by side"""
    size: tuple[int, int] = (64, 64)
    """observation height and width in pixels"""


@dataclass
class DatasetArgs:
    """Print a dataset's statistics; optionally export an episode to MP4 or GIF."""

    data: Annotated[str, tyro.conf.Positional]
    """dataset directory"""
    export: str | None = None
    """write an episode to this .mp4 or .gif file"""
    episode: int = 0
    """which episode to export"""
    fps: int | None = None
    """frames per second of the export (default: the env's render_fps)"""
    scale: int = 4
    """nearest-neighbour upscaling of exported frames"""
    repair: bool = False
    """first drop the episodes whose files are missing or damaged (their files move to DATA/damaged/)"""


def run_collect(args: CollectArgs) -> None:
    """Collect and print a summary table."""
    from dreamworld.envs import POLICIES, collect

    policy = args.policy
    if policy not in POLICIES:
        from dreamworld.agents import load
        from dreamworld.dream.agent_envs import frame_policy

        if not (Path(policy) / "config.json").is_file():
            raise ValueError(f"--policy {policy!r} is neither one of {', '.join(POLICIES)} nor an agent directory")
        policy = frame_policy(load(policy))
    started = time.perf_counter()
    result = collect(args.env, args.out, args.steps, policy=policy, seed=args.seed, num_envs=args.num_envs,
                     size=args.size, epsilon=args.epsilon)
    seconds = time.perf_counter() - started
    print_table(f"collected {args.env} into {args.out}", {
        "episodes added": result.episodes_added, "steps added": result.steps_added,
        "episodes in dataset": result.episodes_total, "steps in dataset": result.steps_total,
        "recovered after a crash": result.recovered, "seconds": f"{seconds:.1f}",
        "steps/s": f"{result.steps_added / max(seconds, 1e-9):.0f}"})


def run_dataset(args: DatasetArgs) -> None:
    """Print stats; export one episode when asked."""
    from dreamworld.envs import EpisodeDataset, env_render_fps, repair_dataset

    if args.repair:
        dropped = repair_dataset(args.data)
        print(f"repair: dropped {len(dropped)} missing or damaged episode(s){': ' if dropped else ''}"
              f"{', '.join(dropped)}")
    ds = EpisodeDataset(args.data)
    stats = ds.stats()
    hist = stats.pop("action_histogram", None)
    rows = {k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in stats.items()}
    if hist is not None:
        total = max(sum(hist), 1)
        rows["actions"] = "  ".join(f"{a}:{100 * c / total:.0f}%" for a, c in enumerate(hist))
    print_table(f"dataset {args.data}", rows)
    if args.export:
        frames = ds.episode(args.episode)["frames"]
        fps = args.fps or ds.manifest.get("render_fps") or env_render_fps(ds.env_id)
        path = write_video(args.export, upscale(frames, args.scale), fps)
        print(f"episode {args.episode} ({len(frames)} frames) written to {path}")
