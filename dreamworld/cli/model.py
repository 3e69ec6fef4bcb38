"""`dreamworld train` and `dreamworld evaluate`: learn a world model, measure how well it dreams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
import tyro

from dreamworld.console import print_table
from dreamworld.model.presets import ModelOptions
from dreamworld.train.config import TrainConfig


@dataclass
class TrainArgs:
    """Train a world model (tokenizer, then termination model, dynamics and outcome heads) on a dataset."""

    data: str
    """dataset directory (from dreamworld collect)"""
    out: str
    """run directory for the checkpoint (config.json + model.safetensors) and wandb files"""
    model: Annotated[ModelOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=ModelOptions)
    """what model to build: the preset and what is added to it"""
    resume: bool = False
    """continue the run in --out from its last checkpoint"""
    wandb: Literal["offline", "online", "disabled"] = "offline"
    """experiment tracking: offline writes a local wandb run (sync later), online needs network"""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)"""
    train: Annotated[TrainConfig, tyro.conf.arg(name="")] = field(default_factory=TrainConfig)
    """optimisation settings: the budget (--minutes), each phase's (--tokenizer.lr, --dynamics.batch-size, ...)"""


@dataclass
class EvaluateArgs:
    """Measure fidelity on held-out episodes: open-loop PSNR/SSIM vs the copy-last-frame baseline, reward and
    termination F1, reconstruction PSNR; random and graded closed-loop play in the dream vs the real game. Writes
    metrics.json, psnr.png, rollout.mp4/.gif and closed_loop.mp4."""

    checkpoint: str
    """run directory of a trained world model"""
    data: str
    """dataset directory; its held-out episodes (the split used in training) are scored"""
    horizon: int = 16
    """steps to imagine open loop from each real context"""
    out: str | None = None
    """report directory (default: CHECKPOINT/report)"""
    samples: int = 256
    """rollouts to score (spread over the held-out episodes)"""
    holdout: float = 0.1
    """held-out share of episodes; keep the value used in training"""
    all_episodes: bool = False
    """score every episode of DATA (for a dataset recorded apart from the training data)"""
    random_play: int = 16
    """also play this many random episodes (at most 500 steps) in the dream and in the real game and compare their
    returns and deaths: how far an agent trained in the dream could be misled (0: skip)"""
    closed_loop_steps: int = 500
    """closed loop (built-in games with a heuristic policy): steps per episode at most"""
    closed_loop_episodes: int = 8
    """closed loop: episodes per policy (the heuristic with 0, 25, 50 and 100% random actions) in the dream and in
    the real game; does the dream pay, end and rank policies as the game does? Writes closed_loop.mp4 (0: skip)"""
    device: str = "cpu"
    """cpu or cuda"""


def run_train(args: TrainArgs) -> None:
    """Train and print the summary table."""
    from dreamworld.train.distributed import env_rank
    from dreamworld.train.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    model_cfg = args.model.config()
    summary = train(args.data, args.out, model_cfg, args.train, resume=args.resume, wandb=args.wandb)
    if env_rank() != 0:
        return  # under torchrun rank 0 reports
    rows = {"run": args.out, "train episodes / held out": f"{summary['train_episodes']} / "
            f"{summary['heldout_episodes']}", "train seconds": f"{summary['train_seconds']:.0f}",
            "precision": summary["precision"]}
    for phase in ("tokenizer", "termination", "dynamics", "outcome"):
        if phase in summary:
            s = summary[phase]
            rows[f"{phase} steps"] = s["steps"]
            if s["first_loss"] is not None:
                rows[f"{phase} first loss"] = f"{s['first_loss']:.4f}"
            rows[f"{phase} final loss"] = f"{s['final_loss']:.4f}"
    if "dynamics" in summary:
        compiled = " (compiled)" if summary["dynamics"]["compiled"] else ""
        rows["dynamics frames/s"] = f"{summary['dynamics']['frames_per_s']:.0f}{compiled}"
    rows |= _metric_rows(summary.get("eval"))
    print_table("dreamworld train", rows)


def _metric_rows(metrics: dict | None) -> dict:
    if not metrics:
        return {}
    rows = {f"PSNR h={h} (baseline)": f"{metrics['psnr'][h]:.2f} ({metrics['baseline_psnr'][h]:.2f})"
            for h in metrics["psnr"]}
    rows |= {f"SSIM h={h}": f"{metrics['ssim'][h]:.3f}" for h in metrics["ssim"]}
    rows["reconstruction PSNR"] = f"{metrics['reconstruction_psnr']:.2f}"
    for k in ("reward_f1", "termination_f1"):
        rows[k] = "n/a (no events)" if metrics[k] is None else f"{metrics[k]:.3f}"
    rows["rollouts x horizon"] = f"{metrics['rollouts']} x {metrics['horizon']}"
    if "random_play" in metrics:
        rp = metrics["random_play"]
        rows[f"random play, {rp['steps']} steps: return dream / real"] = \
            f"{rp['dream_return']:.2f} / {rp['real_return']:.2f}"
        rows["random play: share terminated dream / real"] = \
            f"{rp['dream_terminated']:.2f} / {rp['real_terminated']:.2f}"
        rows["random play: mean length dream / real"] = f"{rp['dream_length']:.1f} / {rp['real_length']:.1f}"
    return rows


def _fmt(x: float | None, spec: str = ".3f") -> str:
    """A number for the tables; n/a for None."""
    return "n/a" if x is None else format(x, spec)


def print_closed_loop(closed: dict) -> None:
    """Print `graded_play`'s numbers: per policy and world reward/step, end rate, return and presence per kind (% of
    frames); then per policy the dream/real ratios and presence gaps (points), and the rank correlation."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    kinds = list(closed["policies"][0]["real"]["presence"])
    table = Table(title=f"closed loop in {closed['env_id']}: heuristic with a share eps of random actions, "
                        f"{closed['episodes']} episodes x {closed['steps']} steps", box=box.SIMPLE_HEAD)
    for column in ("eps", "world", "rew/step", "end/step", "return", *kinds):
        table.add_column(column, justify="right", no_wrap=True)
    for p in closed["policies"]:
        for world in ("dream", "real"):
            m = p[world]
            table.add_row(f"{p['epsilon']:.2f}", world, _fmt(m["reward_per_step"], ".4f"), _fmt(m["end_rate"], ".4f"),
                          _fmt(m["return"], ".2f"), *(f"{100 * m['presence'][k]:.0f}%" for k in kinds))
        table.add_row("", "ratio", _fmt(p["reward_ratio"], ".2f"), _fmt(p["end_ratio"], ".2f"), "",
                      *(f"{p['presence_gap'][k]:+.0f}" for k in kinds), end_section=True)
    table.caption = ("kinds: share of frames showing one; ratio rows: dream/real (n/a: the real game gives 0) and "
                     "presence gaps in points. Spearman rank correlation of the policies' reward/step, dream vs "
                     f"real: {_fmt(closed['rank_correlation'], '.2f')} (n/a: a world pays every policy alike)")
    Console().print(table)


def _closed_loop(args: EvaluateArgs, env_id: str | None, out, fps: int) -> dict | None:
    """Run `graded_play` when the game has a heuristic policy and it is asked for; write closed_loop.mp4 into
    `out`; its numbers (for metrics["closed_loop"]), or None."""
    from dreamworld.envs.games.heuristics import heuristic
    from dreamworld.evaluate.calibration import graded_play, write_closed_loop_video

    if args.closed_loop_episodes <= 0 or not env_id or heuristic(env_id) is None:
        return None
    closed = graded_play(args.checkpoint, env_id, steps=args.closed_loop_steps, episodes=args.closed_loop_episodes,
                         device=args.device)
    write_closed_loop_video(out / "closed_loop.mp4", closed.pop("frames"), fps)
    return closed


def run_evaluate(args: EvaluateArgs) -> None:
    """Evaluate, write the report, print the table."""
    from pathlib import Path

    from dreamworld.checkpoint import load
    from dreamworld.envs import EpisodeDataset
    from dreamworld.evaluate.calibration import random_play
    from dreamworld.evaluate.fidelity import fidelity, write_report
    from dreamworld.train.data import split_episodes

    model = load(args.checkpoint, args.device)
    ds = EpisodeDataset(args.data)
    if ds.env_id != model.cfg.env_id:
        raise ValueError(f"{args.checkpoint} models {model.cfg.env_id} but {args.data} holds {ds.env_id}")
    episodes = list(range(len(ds))) if args.all_episodes else split_episodes(ds, args.holdout)[1]
    if not episodes:
        raise ValueError(f"{args.data} has no held-out episodes: pass --all-episodes with a separate dataset")
    metrics, examples = fidelity(model, ds, episodes, horizon=args.horizon, samples=args.samples)
    if args.random_play > 0 and model.cfg.env_id:
        metrics["random_play"] = random_play(args.checkpoint, model.cfg.env_id, episodes=args.random_play,
                                             device=args.device)
    out = Path(args.out) if args.out else Path(args.checkpoint) / "report"
    closed = _closed_loop(args, model.cfg.env_id, out, model.cfg.render_fps)
    if closed is not None:
        metrics["closed_loop"] = closed
    paths = write_report(out, metrics, examples, model.cfg.render_fps)
    print_table(f"fidelity of {args.checkpoint} on {len(episodes)} episodes of {args.data}", _metric_rows(metrics))
    if closed is not None:
        print_closed_loop(closed)
        paths["closed loop video"] = out / "closed_loop.mp4"
    for name, path in paths.items():
        print(f"{name}: {path}")

