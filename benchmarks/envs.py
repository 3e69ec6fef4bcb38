"""Benchmark: steps/s of each built-in game (one core) and dataset write / window-read throughput.

    python benchmarks/envs.py [--steps 20000] [--json benchmarks/results/envs_cpu.json]
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro
from common import write_results
from rich.console import Console
from rich.table import Table

from dreamworld.envs import EpisodeDataset, builtin_ids, collect, make_env


@dataclass
class Args:
    steps: int = 20_000
    """env steps timed per game (random actions, frame drawn every step)"""
    repeats: int = 3
    """timed repeats; the median is reported"""
    windows: int = 2_000
    """random 16-step windows read from the dataset"""
    json: str | None = None
    """write the results to this JSON file"""


def env_steps_per_second(env_id: str, steps: int) -> float:
    """Steps/s of `env_id` with pre-drawn random actions, resetting on episode end."""
    env = make_env(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, steps)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def dataset_throughput(env_id: str, steps: int, windows: int) -> dict:
    """Collect `steps` into a fresh dataset (write steps/s) and read random 16-step windows (read steps/s)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        collect(env_id, tmp, steps, policy="random", progress=False)
        write = steps / (time.perf_counter() - start)
        ds = EpisodeDataset(tmp, cache_chunks=0)
        rng = np.random.default_rng(0)
        long_enough = [i for i, e in enumerate(ds.episodes) if e.steps >= 16]
        start = time.perf_counter()
        for _ in range(windows):
            i = int(rng.choice(long_enough))
            ds.window(i, int(rng.integers(0, ds.episodes[i].steps - 15)), 16)
        read = windows * 16 / (time.perf_counter() - start)
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    return {"write_steps_per_s": write, "read_steps_per_s": read, "bytes_per_step": size / steps}


def main(args: Args) -> dict:
    results = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
               "numpy": np.__version__, "games": {}}
    table = Table(title="built-in games and datasets (one process)")
    for col in ("game", "env steps/s", "collect+write steps/s", "window read steps/s", "bytes/step"):
        table.add_column(col, justify="right")
    for env_id in builtin_ids():
        sps = statistics.median(env_steps_per_second(env_id, args.steps) for _ in range(args.repeats))
        io = dataset_throughput(env_id, args.steps, args.windows)
        results["games"][env_id] = {"env_steps_per_s": sps, **io}
        table.add_row(env_id.split("/")[-1], f"{sps:,.0f}", f"{io['write_steps_per_s']:,.0f}",
                      f"{io['read_steps_per_s']:,.0f}", f"{io['bytes_per_step']:,.0f}")
    Console().print(table)
    print("window reads are uncached (every read inflates its chunks); raw frames are 12,288 bytes/step")
    if args.json:
        write_results(args.json, results)
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
