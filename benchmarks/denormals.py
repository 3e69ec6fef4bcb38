"""Benchmark: termination-CNN training steps on the CPU with and without flushing denormal floats to zero.

    python benchmarks/denormals.py --checkpoint RUN --data DATA [--steps 300] [--threads 2]
        [--json results/denormals_cpu.json]

The CNN of the world model in RUN trains again, as in `dreamworld train`'s termination phase (the same sampler and
loss), on the model's reconstructions of DATA's training split, once as the CPU runs by default and once with
`torch.set_flush_denormal(True)`, which `dreamworld train` now sets. Its loss soon falls to ~1e-3; gradients that
small reach the denormal range, where the CPU takes a slow path. The table gives the median step time per window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import torch
import tyro
from common import cpu_name, write_results
from rich.console import Console
from rich.table import Table

from dreamworld import checkpoint as ckpt
from dreamworld.envs import EpisodeDataset
from dreamworld.train.config import TrainConfig
from dreamworld.train.data import load_steps, split_episodes
from dreamworld.train.termination import TransitionSampler, drawings, reconstruct, termination_loss
from dreamworld.train.trainer import encode_frames


@dataclass
class Args:
    """Time termination-CNN steps with and without flushing denormals."""

    checkpoint: str
    """a trained world model with a termination CNN"""
    data: str
    """the dataset it was trained on (its training split is used)"""
    steps: int = 300
    """training steps in each setting"""
    window: int = 50
    """steps per row of the table"""
    threads: int = 2
    """CPU threads for torch"""
    json: str | None = None
    """write the results here"""


def time_steps(args: Args, flush: bool) -> list[float]:
    """Per-step seconds of `args.steps` termination steps from the checkpoint's CNN, flushing denormals or not.
    Run in a fresh process: the flag is per thread, and torch's worker threads copy it when they start."""
    torch.set_flush_denormal(flush)
    torch.set_num_threads(args.threads)
    ds = EpisodeDataset(args.data)
    train_eps, _ = split_episodes(ds, TrainConfig().holdout)
    steps = load_steps(ds, train_eps, progress=False)
    model = ckpt.load(args.checkpoint)
    if model.termination is None:
        raise SystemExit(f"{args.checkpoint} reads terminations with the dynamics' head: it has no CNN to train")
    cfg = TrainConfig()
    fresh = drawings(model.tokenizer, encode_frames(model, steps.frames, progress=False))
    frames = reconstruct(model, fresh, torch.from_numpy(steps.frames), steps.episode_start, steps.actions)
    sampler = TransitionSampler(frames, steps.ends, steps.valid, cfg.end_share, torch.Generator().manual_seed(0),
                                near=cfg.termination_near)
    net = model.termination.train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.termination_lr)
    seconds = []
    for _ in range(args.steps):
        batch = sampler.sample(cfg.termination_batch_size, "cpu")
        started = time.perf_counter()
        loss, _ = termination_loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seconds.append(time.perf_counter() - started)
    return seconds


def main(args: Args) -> dict:
    """Run both settings and print the table."""
    with get_context("spawn").Pool(1, maxtasksperchild=1) as pool:  # a fresh process for each setting
        runs = {flush: pool.apply(time_steps, (args, flush)) for flush in (False, True)}
    table = Table(title=f"termination-CNN step, median ms per {args.window} steps ({cpu_name()}, "
                        f"{args.threads} threads)")
    for col in ("steps", "default", "denormals flushed"):
        table.add_column(col, justify="right")
    rows = []
    for start in range(0, args.steps, args.window):
        medians = [1000 * float(np.median(runs[flush][start : start + args.window])) for flush in (False, True)]
        rows.append({"steps": f"{start}-{start + args.window - 1}", "default_ms": medians[0],
                     "flushed_ms": medians[1]})
        table.add_row(rows[-1]["steps"], f"{medians[0]:.0f}", f"{medians[1]:.0f}")
    Console().print(table)
    results = {"cpu": cpu_name(), "threads": args.threads, "checkpoint": args.checkpoint, "rows": rows,
               "total_seconds": {"default": sum(runs[False]), "flushed": sum(runs[True])}}
    if args.json:
        write_results(args.json, results)
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
