"""Benchmark: the play window, headless, on the CPU: frames/s reached and frame times over a scripted session.

    python benchmarks/play.py CHECKPOINT [--frames 600] [--fps 30] [--json benchmarks/results/play_cpu.json]

CHECKPOINT: a run directory, or a shipped world (dreamworld/worlds/bricks) to run from a clean checkout.

Plays `--frames` frames of the dream at `--fps` with SDL_VIDEODRIVER=dummy (the window is drawn in memory at
--scale, header and all), keys from a script that moves and fires, at temperature 1. Frame time: from one frame
to the next as the player sees it (work + waiting for the frame's turn); work: events, model step, drawing.
Goal: >= 30 frames/s with a p95 frame time <= 50 ms for the tiny preset on a 2-core CPU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Annotated

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # before pygame is imported
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import tyro  # noqa: E402
from common import cpu_name, write_results  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dreamworld.checkpoint import read_config  # noqa: E402
from dreamworld.cli.play import PlayArgs, build_app  # noqa: E402
from dreamworld.play import PlayOptions  # noqa: E402

GOAL_FPS, GOAL_P95_MS = 30, 50.0
SCRIPT = "right*20,space,left*25,wait*5,d*10,a+space*3,wait*5,right*12,left*12,space"
"""Keys of one round of the benchmark session (repeated to cover --frames): moves, fires, idles."""


@dataclass
class Args:
    checkpoint: Annotated[str, tyro.conf.Positional]
    """run directory of the world model to play (e.g. a trained tiny preset)"""
    frames: int = 600
    """frames to play"""
    fps: int = 30
    """frames per second to keep to (0: as fast as it goes)"""
    scale: int = 8
    """window pixels per game pixel"""
    temperature: float = 1.0
    """sampling temperature"""
    threads: int = 1
    """torch intra-op threads (one is fastest for a single dream)"""
    json: str | None = None
    """write the results to this JSON file"""


def main(args: Args) -> dict:
    """Play, print the table, optionally write JSON; returns the results."""
    torch.set_num_threads(args.threads)
    cfg, _ = read_config(args.checkpoint)
    load_before = os.getloadavg()
    options = PlayOptions(fps=args.fps, scale=args.scale, script=",".join([SCRIPT] * (args.frames // 100 + 1)),
                          frames=args.frames, auto_reset=True)
    app = build_app(PlayArgs(checkpoint=args.checkpoint, temperature=args.temperature, threads=args.threads,
                             window=options))
    stats = app.run()
    interval, work = np.asarray(stats.interval_ms[1:]), np.asarray(stats.work_ms[1:])  # without the first frame
    results = {
        "device": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
        "date": time.strftime("%Y-%m-%d %H:%M"), "checkpoint": args.checkpoint, "preset": cfg.preset,
        "env_id": cfg.env_id, "tokens_per_frame": (cfg.tokenizer.image_size // 2 ** len(cfg.tokenizer.channels)) ** 2,
        "frames": stats.frames, "target_fps": args.fps, "scale": args.scale, "temperature": args.temperature,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "fps": stats.fps,
        "frame_ms": {"median": float(np.median(interval)), "p95": float(np.percentile(interval, 95)),
                     "max": float(interval.max())},
        "work_ms": {"median": float(np.median(work)), "p95": float(np.percentile(work, 95)),
                    "max": float(work.max())},
    }
    results["goal"] = {"fps": GOAL_FPS, "p95_frame_ms": GOAL_P95_MS,
                       "met": results["fps"] >= GOAL_FPS - 0.5 and results["frame_ms"]["p95"] <= GOAL_P95_MS}
    table = Table(title=f"dreamworld play, headless, on {results['device']} ({args.threads} thread(s)): "
                        f"{args.checkpoint} ({cfg.preset}, {results['tokens_per_frame']} tokens/frame)")
    for col in ("frames", "fps (target)", "frame ms median", "frame ms p95", "work ms median", "work ms p95",
                "fps the work allows"):
        table.add_column(col, justify="right")
    fr, wk = results["frame_ms"], results["work_ms"]
    table.add_row(str(stats.frames), f"{results['fps']:.1f} ({args.fps or 'none'})", f"{fr['median']:.1f}",
                  f"{fr['p95']:.1f}", f"{wk['median']:.1f}", f"{wk['p95']:.1f}", f"{1000 / wk['median']:.0f}")
    console = Console()
    console.print(table)
    console.print(f"goal >= {GOAL_FPS} fps and p95 frame time <= {GOAL_P95_MS:.0f} ms: "
                  f"{'met' if results['goal']['met'] else 'not met'}; load average before/after "
                  f"{results['load_average_before_after']} on {results['cores']} cores")
    if args.json:
        write_results(args.json, results)
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
