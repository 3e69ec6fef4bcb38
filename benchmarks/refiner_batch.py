"""Benchmark: how many frames the refiner should draw at a time on the CPU. Its activations are full-resolution
(32 channels x 64 x 64 floats, 512 KB a frame), so a batch of hundreds of frames streams through memory at every
SiLU, softmax and tap of the mix, while a chunk of a few dozen stays in the caches.

    python benchmarks/refiner_batch.py [--world cave] [--frames 512] [--chunks 8 16 32 64 128 512] [--threads 2]
        [--json results/refiner_batch_cpu.json]

The world model draws `--frames` real frames of its own start contexts over the frame before each (as
`draw_over_real` does for the termination CNN's training data, and a dream step for every dream), once per chunk
size (`dreamworld.model.world_model.REFINE_CHUNK_CPU`); the table gives the median time per frame over `--repeats` runs
and checks that every chunk size draws the same frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from common import cpu_name, write_results
from rich.console import Console
from rich.table import Table

import dreamworld
from dreamworld import checkpoint as ckpt
from dreamworld import worlds
from dreamworld.io import read_safetensors
from dreamworld.model import world_model


@dataclass
class Args:
    """Time the refiner's drawing per chunk size."""

    world: str = "cave"
    """a shipped world's name or a run directory, whose model has a refiner"""
    frames: int = 512
    """frames drawn per call (`reconstruct` draws 512 at a time; a dream step draws one per dream)"""
    chunks: tuple[int, ...] = (8, 16, 32, 64, 128, 512)
    """chunk sizes to time"""
    repeats: int = 5
    """timed calls per chunk size (the median is reported)"""
    threads: int = 2
    """torch CPU threads"""
    json: str | None = None
    """write the results to this JSON file"""


def main(args: Args) -> None:
    """Draw the same frames at every chunk size, print the table."""
    torch.set_num_threads(args.threads)
    run = Path(args.world) if Path(args.world).is_dir() else worlds.path(args.world)
    model = dreamworld.load(run, device="cpu")
    if model.refiner is None:
        raise SystemExit(f"{args.world} has no refiner: pick a world trained with --refiner (the shipped cave)")
    starts = read_safetensors(run / ckpt.STARTS)["frames"]  # (S, T, H, W, 3) uint8
    real = starts.reshape(-1, *starts.shape[-3:])  # (S * T, H, W, 3)
    real = real[torch.arange(args.frames + 1) % len(real)]  # (frames + 1, H, W, 3)
    fresh = model.tokenizer.decode(model.encode(real[1:]))  # (frames, 3, H, W)
    before, has_before = real[:-1], torch.ones(args.frames, dtype=torch.bool)
    actions = torch.zeros(args.frames, dtype=torch.long)
    rows, reference = [], None
    for chunk in args.chunks:
        world_model.REFINE_CHUNK_CPU = chunk
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            drawn = model.draw_over_real(fresh, before, has_before, actions)  # (frames, 3, H, W)
            times.append(time.perf_counter() - start)
        reference = drawn if reference is None else reference
        rows.append({"chunk": chunk, "ms_per_frame": 1e3 * sorted(times)[len(times) // 2] / args.frames,
                     "max_difference": (drawn - reference).abs().max().item()})
    best = min(row["ms_per_frame"] for row in rows)
    table = Table(title=f"refiner drawing {args.frames} frames, {args.threads} threads, {cpu_name()}")
    for column in ("chunk", "ms per frame", "vs best", "max difference from the first chunk size"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["chunk"]), f"{row['ms_per_frame']:.2f}", f"{row['ms_per_frame'] / best:.2f}x",
                      f"{row['max_difference']:.1e}")
    Console().print(table)
    if args.json:
        write_results(args.json, {"what": "benchmarks/refiner_batch.py: the refiner's drawing time per frame by how "
                                  "many frames it draws at a time", "world": args.world, "frames": args.frames,
                                  "threads": args.threads, "cpu": cpu_name(), "precision": model.precision,
                                  "rows": rows})


if __name__ == "__main__":
    main(tyro.cli(Args))
