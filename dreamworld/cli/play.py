"""`dreamworld play`: play a world model's dream in a pygame window (or headless, from scripted keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import tyro

from dreamworld import worlds
from dreamworld.console import print_table
from dreamworld.play.app import PlayApp, PlayOptions, PlayStats


@dataclass
class PlayArgs:
    """Play a dream in a window. Keys: the game's keys (arrows / WASD / space), Enter new start, P pause, N step,
    Backspace rewind, M human / agent, V real game beside the dream, T / G temperature up / down, F5 record,
    F6 save the episode to a dataset, H help, Esc quit. With SDL_VIDEODRIVER=dummy it plays --script headless."""

    checkpoint: str | None = None
    """run directory of a trained world model (default: the shipped world --world)"""
    world: str | None = None
    """name of a world shipped with dreamworld (default: bricks); dreamworld.worlds.available() lists them"""
    agent: str | None = None
    """an agent (from dreamworld train-agent) that M hands control to (default: the shipped world's agent)"""
    data: str | None = None
    """dataset to draw start contexts from (default: the starts saved with the checkpoint)"""
    temperature: float = 1.0
    """sampling temperature to start with (0: the most likely frames)"""
    seed: int = 0
    """seed of the start contexts and the sampling"""
    threads: int = 1
    """CPU threads for torch (one is fastest for a single dream)"""
    device: str = "cpu"
    """where the model runs: cpu or cuda"""
    window: Annotated[PlayOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=PlayOptions)
    """window, pacing, recording, saving and scripted keys"""


def resolve_checkpoint(checkpoint: str | None, world: str | None) -> Path:
    """The checkpoint directory to play: --checkpoint, else the shipped world --world (default bricks)."""
    if checkpoint is not None and world is not None:
        raise ValueError("pass either --checkpoint RUN or --world NAME, not both")
    if checkpoint is not None:
        return Path(checkpoint)
    return worlds.path(world)


def load_agent(path: str):
    """The policy in `path` through `dreamworld.agents.load`, refused unless it acts on what a dream shows."""
    from dreamworld.agents import load
    from dreamworld.dream.observations import OBS_TYPES, reads_frames

    policy = load(path, device="cpu")
    obs_type = getattr(policy, "obs_type", "pixels")
    if obs_type not in OBS_TYPES:
        raise ValueError(f"agent {path} observes {obs_type!r} observations, not a dream's frames, latent codes or "
                         "objects: pass an agent trained in the dream (dreamworld train-agent)")
    return reads_frames(policy)  # an objects agent reads the dream's frames


def build_app(args: PlayArgs) -> PlayApp:
    """Load the model, start contexts, key map and agent; the window is not opened yet."""
    try:
        import pygame  # noqa: F401
    except ImportError as e:
        raise ImportError("dreamworld play needs pygame: pip install 'dreamworld[play]'") from e
    from dreamworld.checkpoint import load
    from dreamworld.dream.starts import StartContexts
    from dreamworld.play import KeyMap, PlaySession

    if not np.isfinite(args.temperature) or args.temperature < 0:
        raise ValueError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    run = resolve_checkpoint(args.checkpoint, args.world)
    model = load(run, args.device)
    cfg = model.cfg
    agent_dir = args.agent or (None if args.checkpoint else worlds.agent_path(run))  # a shipped world's agent
    agent = load_agent(str(agent_dir)) if agent_dir else None
    agent_space = getattr(agent, "action_space", model.action_space)
    if agent_space != model.action_space:
        raise ValueError(f"agent {agent_dir} acts in {agent_space} but the world model {run} in "
                         f"{model.action_space}: pass an agent trained for {cfg.env_id}")
    rewind = max(1, round(args.window.rewind_seconds * cfg.render_fps))
    session = PlaySession(model, StartContexts(run, cfg, args.data), temperature=args.temperature,
                          rewind_frames=rewind, seed=args.seed)
    return PlayApp(session, KeyMap.for_env(cfg.env_id, model.action_space), args.window, agent=agent,
                   title=f"{cfg.env_id} ({run})")


def run_play(args: PlayArgs) -> PlayStats:
    """Play, then print what happened. Torch runs on `args.threads` while playing and on the caller's count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        stats = build_app(args).run()
    finally:
        torch.set_num_threads(threads)
    rows = {"frames": stats.frames, "fps reached": f"{stats.fps:.1f}"}
    if stats.work_ms:
        rows["frame time median / p95 (ms)"] = (f"{np.median(stats.interval_ms):.1f} / "
                                                f"{np.percentile(stats.interval_ms, 95):.1f}")
    for i, message in enumerate(stats.messages):
        rows[f"message {i + 1}"] = message
    print_table("dreamworld play", rows)
    return stats
