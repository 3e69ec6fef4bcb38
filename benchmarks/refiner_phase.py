"""Benchmark: the refiner phase alone, for the same wall time, on the frozen tokenizers of trained runs, then how
well each model draws the held-out frames (a refiner draws each frame over the real one before it). It separates
what the tokenizer's drawings give the refiner from the luck of one whole run.

    python benchmarks/refiner_phase.py --runs runs/cave31 runs/cave32 --data data/bar_cave [--seconds 108]
        [--seeds 0] [--widths 32 16] [--json results/refiner_phase_cave_avx2.json]

Each (run, seed) starts a new refiner from the seed's weights and trains it as `dreamworld train` does
(`refiner_phase`: chains of its own drawings, the logits at a tenth of the rate), on the run's tokenizer's drawings
of the training split. 108 s is the Cave recipe's refiner share of 15 minutes. A run trained without a refiner gets
a row for its tokenizer alone first, then new refiners (RefinerConfig's shape): what `--refiner` would add to it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import torch
import tyro
from common import save_results
from rich.console import Console
from rich.table import Table

from dreamworld import load
from dreamworld.envs import EpisodeDataset
from dreamworld.evaluate.fidelity import reconstruction_psnr
from dreamworld.model.precision import flush_denormals
from dreamworld.model.refiner import Refiner, RefinerConfig
from dreamworld.tracking import Tracker
from dreamworld.train.config import TrainConfig
from dreamworld.train.data import load_steps, split_episodes
from dreamworld.train.distributed import Distributed
from dreamworld.train.optional_phases import refiner_phase
from dreamworld.train.termination import drawings
from dreamworld.train.trainer import encode_frames


@dataclass
class Args:
    runs: list[str]
    """trained runs, whose tokenizers (frozen) the new refiners learn on (with or without a refiner of their own)"""
    data: str
    """their dataset (its training split trains, its held-out split is scored)"""
    seconds: float = 108.0
    """wall time of each refiner phase"""
    seeds: list[int] = field(default_factory=lambda: [0])
    """seeds of the new refiners' weights and batches, each with every run"""
    widths: list[int] | None = None
    """refiner widths (RefinerConfig.width) to compare, each with every run and seed; default: each run's own"""
    threads: int = 2
    """torch CPU threads"""
    json: str | None = None
    """write the results to this JSON file"""


def main(args: Args) -> dict:
    """Train a new refiner per run and seed; print the table and return (and write) the results."""
    flush_denormals()
    torch.set_num_threads(args.threads)
    ds = EpisodeDataset(args.data)
    cfg = TrainConfig(minutes=args.seconds / 60, tokenizer_share=0.0, refiner_share=1.0, termination_share=0.0,
                      outcome_share=0.0, checkpoint_seconds=1e9)
    train_eps, held = split_episodes(ds, cfg.holdout)
    steps = load_steps(ds, train_eps, progress=False)
    rows = []
    for run in args.runs:
        model = load(run)
        refiner_cfg = RefinerConfig() if model.refiner is None else model.refiner.cfg
        about = {"run": run, "tokenizer_channels": model.tokenizer.cfg.channels}
        if model.refiner is None:  # what a refiner adds to a world trained without one: its tokenizer alone first
            model.eval()
            rows.append({**about, "refiner_width": None,
                         "heldout_reconstruction_psnr": reconstruction_psnr(model, ds, held)})
        model.tokenizer.requires_grad_(False)
        fresh = drawings(model.tokenizer, encode_frames(model, steps.frames, progress=False))  # (F, H, W, 3)
        for width, seed in itertools.product(args.widths or [refiner_cfg.width], args.seeds):
            torch.manual_seed(seed)
            model.refiner = Refiner(replace(refiner_cfg, width=width), model.action_space)
            phase = refiner_phase(model, steps, fresh, cfg, torch.Generator().manual_seed(seed), {"global_step": 0},
                                  lambda _: None, Tracker("disabled", ".", {}, "bench"), Distributed("cpu"))
            model.eval()
            rows.append({**about, "refiner_width": width, "seed": seed, "steps": phase["steps"],
                         "first_loss": phase["first_loss"], "final_loss": phase["final_loss"],
                         "heldout_reconstruction_psnr": reconstruction_psnr(model, ds, held)})
    table = Table(title=f"refiner phase, {args.seconds:.0f} s each, {args.data}")
    for col in ("run (tokenizer widths)", "refiner width", "seed", "steps", "first / final loss",
                "held-out reconstruction PSNR"):
        table.add_column(col, justify="right")
    for r in rows:
        cells = ["none", "", "", ""] if r["refiner_width"] is None else [
            str(r["refiner_width"]), str(r["seed"]), str(r["steps"]), f"{r['first_loss']:.4f} / {r['final_loss']:.4f}"]
        table.add_row(f"{r['run']} ({' '.join(map(str, r['tokenizer_channels']))})", *cells,
                      f"{r['heldout_reconstruction_psnr']:.2f}")
    Console().print(table)
    return save_results(args, data=args.data, seconds=args.seconds, rows=rows)


if __name__ == "__main__":
    main(tyro.cli(Args))
