"""`dreamworld train` and `dreamworld evaluate`: learn a world model, measure how well it dreams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
import tyro

from .console import print_table
from .presets import ModelOptions
from .train import TrainConfig


@dataclass
class TrainArgs:
    """Train a world model (tokenizer, then refiner, termination model, dynamics and outcome heads) on a dataset."""

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
    train: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=TrainConfig)
    """optimisation settings"""


@dataclass
class EvaluateArgs:
    """Measure fidelity on held-out episodes: open-loop PSNR/SSIM vs the copy-last-frame baseline, reward and
    termination F1, reconstruction PSNR. Writes metrics.json, psnr.png and rollout.mp4/.gif."""

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
    device: str = "cpu"
    """cpu or cuda"""


def run_train(args: TrainArgs) -> None:
    """Train and print the summary table."""
    from .distributed import env_rank
    from .train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    model_cfg = args.model.config()
    summary = train(args.data, args.out, model_cfg, args.train, resume=args.resume, wandb=args.wandb)
    if env_rank() != 0:
        return  # under torchrun rank 0 reports
    rows = {"run": args.out, "train episodes / held out": f"{summary['train_episodes']} / "
            f"{summary['heldout_episodes']}", "train seconds": f"{summary['train_seconds']:.0f}",
            "precision": summary["precision"]}
    for phase in ("tokenizer", "refiner", "termination", "dynamics", "outcome"):
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
    if "chain_reconstruction_psnr" in metrics:
        rows["reconstruction PSNR, whole episodes drawn in a chain"] = f"{metrics['chain_reconstruction_psnr']:.2f}"
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


def run_evaluate(args: EvaluateArgs) -> None:
    """Evaluate, write the report, print the table."""
    from pathlib import Path

    from dreamworld.envs import EpisodeDataset

    from .calibration import random_play
    from .checkpoint import load
    from .data import split_episodes
    from .evaluate import fidelity, write_report

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
    paths = write_report(out, metrics, examples, model.cfg.render_fps)
    print_table(f"fidelity of {args.checkpoint} on {len(episodes)} episodes of {args.data}", _metric_rows(metrics))
    for name, path in paths.items():
        print(f"{name}: {path}")

