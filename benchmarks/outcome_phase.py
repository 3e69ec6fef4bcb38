"""Benchmark: what the outcome phase (dreamworld/train/outcome.py) does to a trained world model's reward and
termination reading, the transformer unchanged: F1 before and after, on the held-out split of the training data and on a
dataset recorded apart, and random play in the dream against the real game (a head that pays for
flicker would show there).

    python benchmarks/outcome_phase.py --checkpoint RUN --data DATA --fresh FRESH [--seconds 42] [--out RUN2]
        [--json results/outcome_phase_cpu.json]

The phase runs as in `dreamworld train` (run_phase, its learning-rate schedule, bfloat16 states where native) for
`--seconds` (42 s: the phase's training time in a 14-minute run; `dreamworld train` computes the states inside its
8% share). `--out` saves the model with the retrained heads.
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
from dreamworld.evaluate.calibration import random_play
from dreamworld.tracking import Tracker
from dreamworld.train.config import TrainConfig
from dreamworld.train.data import load_steps
from dreamworld.train.optional_phases import outcome_phase
from dreamworld.train.trainer import encode_frames


@dataclass
class Args(PhaseArgs):
    seconds: float = 42.0
    """length of the outcome phase"""
    random_play: int = 16
    """random-play episodes (500 steps at most) in the dream and the real game, before and after (0: skip; needs
    --out, where the retrained model is saved for the dream)"""


def main(args: Args) -> dict:
    """Score, run the outcome phase, score again; print the table and return (and write) the results."""
    model, ds, fresh, train_eps, held = load_phase_inputs(args)
    rows = {"before": head_f1(model, ds, held, fresh)}
    steps = load_steps(ds, train_eps)
    tokens = encode_frames(model, steps.frames)
    cfg = TrainConfig(minutes=args.seconds / 60, outcome_share=1.0, seed=args.seed)
    started = time.perf_counter()
    phase = outcome_phase(model, steps, tokens, cfg, torch.Generator().manual_seed(args.seed),
                          {"phase": "outcome", "global_step": 0}, lambda _: None, Tracker("disabled", ".", {}, "bench"))
    states_seconds = time.perf_counter() - started - phase["seconds"]
    rows["after"] = head_f1(model, ds, held, fresh)
    if args.out:
        ckpt.save_model(args.out, model, ckpt.read_config(args.checkpoint)[1] |
                        {"outcome_phase": {"seconds": args.seconds, "steps": phase["steps"]}})
        shutil.copy(Path(args.checkpoint) / ckpt.STARTS, Path(args.out) / ckpt.STARTS)
    if args.random_play and args.out:
        for name, path in (("before", args.checkpoint), ("after", args.out)):
            rows[name]["random_play"] = random_play(path, model.cfg.env_id, episodes=args.random_play, seed=args.seed)
    table = Table(title=f"outcome phase on {args.checkpoint}: {phase['steps']} steps in {phase['seconds']:.0f} s "
                        f"(+{states_seconds:.0f} s computing the states)")
    for col in ("", "reward F1 held-out", "reward F1 fresh", "termination F1 held-out", "termination F1 fresh",
                "random play dream / real"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        play = r.get("random_play")
        table.add_row(name, *(f"{r[k]:.3f}" if r[k] is not None else "-" for k in
                              ("heldout_reward_f1", "fresh_reward_f1", "heldout_termination_f1",
                               "fresh_termination_f1")),
                      f"{play['dream_return']:.2f} / {play['real_return']:.2f}" if play else "-")
    Console().print(table)
    return save_results(args, checkpoint=args.checkpoint, data=args.data, fresh=args.fresh, phase=phase,
                        states_seconds=states_seconds, **rows)


if __name__ == "__main__":
    main(tyro.cli(Args))
