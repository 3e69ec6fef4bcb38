"""Benchmark: the termination phase (dreamworld/model/termination.py) trained again, from a fresh CNN, on a trained
world model's drawings of its training data, everything else unchanged: termination F1 before and after, on the held-out
split and on a dataset recorded apart. It answers "how good can this world's termination CNN get with more steps,
moved and flipped copies, real frames" without retraining the world. With `--rewards` the new CNN reads rewards
too (`dreamworld train --rewards frames`), so their F1 reads off it.

    python benchmarks/termination_phase.py --checkpoint W --data DATA --fresh FRESH --steps 5000 --shift 8 --flip
        --real-share 0.5 [--out W2] [--json results/termination_phase_cave_cpu.json]

The phase runs as in `dreamworld train` (`termination_phase`: the model's drawings, run_phase, its learning-rate
schedule, then the prior correction). `--out` saves the model with the new CNN (and the checkpoint's start
contexts).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from common import PhaseArgs, head_f1, load_phase_inputs, save_results
from rich.console import Console
from rich.table import Table

from dreamworld import checkpoint as ckpt
from dreamworld.model.precision import Precision, resolve
from dreamworld.model.termination import TerminationConfig, TerminationNet
from dreamworld.tracking import Tracker
from dreamworld.train.config import TrainConfig
from dreamworld.train.data import load_steps
from dreamworld.train.optional_phases import termination_phase
from dreamworld.train.termination import drawings
from dreamworld.train.trainer import encode_frames


@dataclass
class Args(PhaseArgs):
    steps: int = 5000
    """termination-phase steps"""
    shift: int = 8
    """--termination-shift of the phase (0: no moves)"""
    flip: bool = True
    """--termination-flip of the phase"""
    real_share: float = 0.5
    """--termination-real-share of the phase"""
    precision: Precision = "auto"
    """--termination-precision of the phase"""
    before: bool = True
    """score the checkpoint's own CNN first"""
    rewards: bool = False
    """the new CNN reads rewards too, as `dreamworld train --rewards frames` trains it (a reward head)"""
    channels: tuple[int, ...] | None = None
    """channels of the new CNN's stride-2 convolutions (default: the checkpoint's CNN's)"""
    hidden: int | None = None
    """width of the new CNN's hidden layer (default: the checkpoint's CNN's)"""
    lr: float = TrainConfig.termination_lr
    """--termination-lr of the phase"""
    batch_size: int = TrainConfig.termination_batch_size
    """--termination-batch-size of the phase (steps: frame before, frame after)"""


def main(args: Args) -> dict:
    """Score, train a new CNN, score again; print the table and return (and write) the results."""
    model, ds, fresh, train_eps, held = load_phase_inputs(args)
    if model.termination is None:
        raise SystemExit(f"{args.checkpoint} reads terminations with the dynamics' end head: no CNN to train")
    rows = {"before": head_f1(model, ds, held, fresh)} if args.before else {}
    old = model.cfg.termination
    model.cfg.termination = TerminationConfig(channels=list(args.channels or old.channels),
                                              hidden=args.hidden or old.hidden, rewards=args.rewards)  # no shift yet
    model.termination = TerminationNet(model.cfg.termination, model.cfg.tokenizer.image_size)
    steps = load_steps(ds, train_eps)
    fresh_drawings = drawings(model.tokenizer, encode_frames(model, steps.frames))  # (F, H, W, 3)
    cfg = TrainConfig(steps=args.steps, termination_share=1.0, termination_shift=args.shift,
                      termination_flip=args.flip, termination_real_share=args.real_share,
                      termination_precision=args.precision, termination_lr=args.lr,
                      termination_batch_size=args.batch_size, seed=args.seed)
    started = time.perf_counter()
    phase = termination_phase(model, steps, fresh_drawings, cfg, torch.Generator().manual_seed(args.seed),
                              {"phase": "termination", "global_step": 0}, lambda _: None,
                              Tracker("disabled", ".", {}, "bench"))
    drawing_seconds = time.perf_counter() - started - phase["seconds"]
    rows["after"] = head_f1(model, ds, held, fresh)
    if args.out:
        ckpt.save_model(args.out, model, ckpt.read_config(args.checkpoint)[1] | {"termination_phase": {
            "steps": phase["steps"], "seconds": phase["seconds"], "shift": args.shift, "flip": args.flip,
            "real_share": args.real_share, "lr": args.lr, "rewards": args.rewards, "seed": args.seed,
            "batch_size": args.batch_size}})
        shutil.copy(Path(args.checkpoint) / ckpt.STARTS, Path(args.out) / ckpt.STARTS)
    table = Table(title=f"termination phase on {args.checkpoint}: {phase['steps']} steps in {phase['seconds']:.0f} s "
                        f"(+{drawing_seconds:.0f} s drawing the frames), prior shift {phase['prior_shift']:.2f}")
    for col in ("", "held-out termination F1 (endings)", "fresh termination F1 (endings)",
                "held-out reward F1", "fresh reward F1 (events)"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['heldout_termination_f1']:.3f} ({r['heldout_terminations']})",
                      f"{r['fresh_termination_f1']:.3f} ({r['fresh_terminations']})", f"{r['heldout_reward_f1']:.3f}",
                      f"{r['fresh_reward_f1']:.3f} ({r['fresh_reward_events']})")
    Console().print(table)
    settings = {"steps": args.steps, "shift": args.shift, "flip": args.flip, "real_share": args.real_share,
                "precision": resolve(args.precision, "cpu"), "lr": args.lr, "batch_size": args.batch_size,
                "rewards": args.rewards, "channels": model.cfg.termination.channels,
                "hidden": model.cfg.termination.hidden}
    return save_results(args, checkpoint=args.checkpoint, data=args.data, fresh=args.fresh, phase=phase,
                        drawing_seconds=drawing_seconds, settings=settings, **rows)


if __name__ == "__main__":
    main(tyro.cli(Args))
