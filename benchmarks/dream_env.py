"""Benchmark: frames/s of DreamVectorEnv at several batch sizes, pixel and latent observations, on the CPU, next
to the real env's steps/s; the model FLOPs of one imagined step (counted by torch's FlopCounterMode), the CPU's
measured matrix-multiply ceiling in float32 and bfloat16 and the share of it the dreams reach; and where the time
of one step goes (torch.profiler, the ops that take most of it).

    python benchmarks/dream_env.py [--checkpoint RUN] [--precision float32|bfloat16|auto] [--quick]
        [--json benchmarks/results/dream_env_cpu.json]

Without --checkpoint the model is the `tiny` preset with random weights (speed does not depend on training; its
termination head is silenced so that dreams do not restart at random) starting from real frames of --env.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from common import cpu_name, write_results
from rich.console import Console
from rich.table import Table

from dreamworld.checkpoint import STARTS, read_config, save_model
from dreamworld.dream.vector_env import DreamVectorEnv
from dreamworld.envs import make_env, space_to_json
from dreamworld.io import write_safetensors
from dreamworld.model.precision import Precision, resolve
from dreamworld.model.presets import preset
from dreamworld.model.world_model import WorldModel

GOALS = {"pixels": (64, 3000.0), "latent": (256, 8000.0)}
"""observation kind: (dreams, frames/s) the speed issue asks of the tiny preset on 2 cores"""
GOAL_CEILING_SHARE = 0.4
"""share of the measured GEMM ceiling the latent dreams at N=256 should reach in model FLOP/s"""


@dataclass
class Args:
    checkpoint: str | None = None
    """a trained run directory; default: the tiny preset with random weights"""
    env: str = "dreamworld/Catch-v0"
    """real env of the random-weight model (its frames start the dreams, its action space drives them)"""
    sizes: tuple[int, ...] = (1, 16, 64, 256)
    """numbers of dreams stepped together"""
    seconds: float = 2.0
    """timed seconds per measurement (after one warm-up step)"""
    precision: Precision = "float32"
    """the dynamics' precision (DreamVectorEnv precision): float32, bfloat16 or auto"""
    threads: int = 1
    """torch intra-op threads (1 is fastest when other jobs share the cores; try 2 on an idle 2-core machine)"""
    quick: bool = False
    """1 second per measurement"""
    json: str | None = None
    """write the results to this JSON file"""


def random_tiny_run(out: Path, env_id: str) -> None:
    """A checkpoint of the tiny preset with random weights, with start contexts recorded from the real env."""
    env = make_env(env_id)
    cfg = preset("tiny")
    cfg.env_id, cfg.action_space = env_id, space_to_json(env.action_space)
    cfg.obs_shape, cfg.render_fps = list(env.observation_space.shape), env.metadata.get("render_fps", 30)
    torch.manual_seed(0)
    model = WorldModel(cfg)
    with torch.no_grad():
        heads = model.dynamics if model.termination is None else model.termination  # which decides terminations
        heads.end_head.bias.fill_(-100.0)  # random weights would end dreams at random
    save_model(out, model, info={"benchmark": "random weights"})
    K = cfg.dynamics.context_frames
    env.action_space.seed(0)
    frames, actions = [env.reset(seed=0)[0]], []
    for _ in range(K - 1):
        actions.append(env.action_space.sample())
        frames.append(env.step(actions[-1])[0])
    write_safetensors(out / STARTS, {"frames": torch.from_numpy(np.stack(frames)[None]),  # (1, K, H, W, 3)
                                     "actions": torch.from_numpy(np.stack(actions)[None])})  # (1, K-1, ...)
    env.close()


def dream_fps(run: str, num_envs: int, obs_type: str, seconds: float, precision: str) -> dict:
    """Frames/s (num_envs x steps/s) of `num_envs` dreams with random actions."""
    envs = DreamVectorEnv(num_envs, checkpoint=run, obs_type=obs_type, max_episode_steps=10**9, device="cpu",
                          precision=precision)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    envs.step(envs.action_space.sample())  # warm-up
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(envs.action_space.sample())
        steps += 1
    elapsed = time.perf_counter() - start
    envs.close()
    return {"frames_per_s": num_envs * steps / elapsed, "ms_per_step": 1000 * elapsed / steps, "steps": steps}


def gemm_ceiling(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a (size x size) @ (size x size) matrix multiply in `dtype` at torch's thread count (median)."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times)) / 1e9


def _stepped_envs(run: str, num_envs: int, obs_type: str, precision: str) -> DreamVectorEnv:
    """`num_envs` dreams of `run`, reset and stepped once (caches warm)."""
    envs = DreamVectorEnv(num_envs, checkpoint=run, obs_type=obs_type, max_episode_steps=10**9, device="cpu",
                          precision=precision)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    envs.step(envs.action_space.sample())
    return envs


def step_flops(run: str, num_envs: int, obs_type: str, precision: str) -> float:
    """Model FLOPs per imagined frame of one step of `num_envs` dreams (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    envs = _stepped_envs(run, num_envs, obs_type, precision)
    with FlopCounterMode(display=False) as counter:
        envs.step(envs.action_space.sample())
    envs.close()
    return counter.get_total_flops() / num_envs


def step_profile(run: str, num_envs: int, obs_type: str, precision: str, steps: int = 5, top: int = 8) -> list:
    """The `top` ops by self CPU time over `steps` steps of `num_envs` dreams: name, ms per step, share."""
    from torch.profiler import ProfilerActivity, profile

    envs = _stepped_envs(run, num_envs, obs_type, precision)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            envs.step(envs.action_space.sample())
    envs.close()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    return [{"op": e.key, "ms_per_step": e.self_cpu_time_total / 1000 / steps,
             "share": e.self_cpu_time_total / total} for e in ops[:top]]


def real_env_steps_per_s(env_id: str, seconds: float) -> float | None:
    """Steps/s of the real env (one env, random actions); None when it is not installed."""
    try:
        env = make_env(env_id)
    except (ImportError, ValueError):
        return None
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    env.close()
    return steps / (time.perf_counter() - start)


def main(args: Args) -> dict:
    """Measure, print the table, optionally write JSON; returns the results."""
    torch.set_num_threads(args.threads)
    seconds = 1.0 if args.quick else args.seconds
    allocator = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.checkpoint or tmp
        if args.checkpoint is None:
            random_tiny_run(Path(tmp), args.env)
        cfg, _ = read_config(run)
        model = f"{args.checkpoint} ({cfg.preset})" if args.checkpoint else "tiny preset, random weights"
        rows = {n: {o: dream_fps(run, n, o, seconds, args.precision) for o in ("pixels", "latent")} for n in args.sizes}
        flops = {o: step_flops(run, GOALS[o][0], o, args.precision) for o in GOALS}
        profiled = {o: step_profile(run, GOALS[o][0], o, args.precision) for o in GOALS}
    real = real_env_steps_per_s(cfg.env_id, seconds)
    ceiling = {"float32": gemm_ceiling(torch.float32), "bfloat16": gemm_ceiling(torch.bfloat16)}
    results = {
        "device": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
        "precision": resolve(args.precision, "cpu"),
        "date": time.strftime("%Y-%m-%d %H:%M"), "model": model, "env_id": cfg.env_id,
        "tokens_per_frame": (cfg.tokenizer.image_size // 2 ** len(cfg.tokenizer.channels)) ** 2,
        "allocator": allocator or "glibc malloc, no MALLOC_* variables set",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "real_env_steps_per_s": real, "dreams": {str(n): r for n, r in rows.items()},
        "gemm_ceiling_gflops": ceiling, "flops_per_frame": flops, "profile": profiled,
    }
    table = Table(title=f"DreamVectorEnv on {results['device']} ({args.threads} thread(s), "
                        f"{results['precision']}): {model}")
    for col in ("dreams", "pixels frames/s", "latent frames/s", "pixels ms/step", "latent ms/step", "decoder share"):
        table.add_column(col, justify="right")
    for n, r in rows.items():
        pix, lat = r["pixels"], r["latent"]
        share = max(0.0, 1 - lat["ms_per_step"] / pix["ms_per_step"])
        table.add_row(str(n), f"{pix['frames_per_s']:,.0f}", f"{lat['frames_per_s']:,.0f}",
                      f"{pix['ms_per_step']:.1f}", f"{lat['ms_per_step']:.1f}", f"{share:.0%}")
    console = Console()
    console.print(table)
    console.print(f"real env {cfg.env_id}: " + (f"{real:,.0f} steps/s (one env)" if real else "not installed"))
    console.print(f"allocator: {results['allocator']}; load average before/after "
                  f"{results['load_average_before_after']} on {results['cores']} cores")
    results["goals"] = goals(results, rows, resolve(args.precision, "cpu"))
    for kind, goal in results["goals"].items():
        console.print(f"{kind} at N={goal['dreams']}: {goal['frames_per_s']:,.0f} frames/s (goal {goal['goal']:,.0f}), "
                      f"{goal['model_gflops']:.1f} model GFLOP/s = {goal['ceiling_share']:.1%} of the "
                      f"{goal['ceiling']} GEMM ceiling ({results['gemm_ceiling_gflops'][goal['ceiling']]:.0f} GFLOP/s)")
        for op in results["profile"][kind][:5]:
            console.print(f"    {op['op']:<40} {op['ms_per_step']:7.2f} ms/step  {op['share']:.0%}")
    if args.json:
        write_results(args.json, results)
    return results


def goals(results: dict, rows: dict, precision: str) -> dict:
    """Per observation kind with a goal: frames/s at its N against the goal, the model FLOP/s they mean and their
    share of the GEMM ceiling in the dynamics' precision (bfloat16 or float32)."""
    ceiling = "bfloat16" if precision == "bfloat16" else "float32"
    out = {}
    for kind, (n, goal) in GOALS.items():
        if n not in rows:
            continue
        fps = rows[n][kind]["frames_per_s"]
        gflops = fps * results["flops_per_frame"][kind] / 1e9
        share = gflops / results["gemm_ceiling_gflops"][ceiling]
        out[kind] = {"dreams": n, "frames_per_s": fps, "goal": goal, "met": fps >= goal, "model_gflops": gflops,
                     "ceiling": ceiling, "ceiling_share": share,
                     "ceiling_share_met": share >= GOAL_CEILING_SHARE if kind == "latent" else None}
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
