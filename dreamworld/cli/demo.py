"""`dreamworld demo`: collect -> train -> evaluate -> train an agent in the dream -> score it in the real game."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch

from dreamworld.console import print_table
from dreamworld.jobs.demo import DemoConfig


@dataclass(kw_only=True)
class DemoArgs(DemoConfig):
    """Run dreamworld end to end on the CPU in about ten minutes: collect Catch, train a tiny world model,
    evaluate it, train an agent in the dream, play the real game with it; the report lands in OUT/report/."""

    out: str = "demo"
    """demo directory: data/, world_model/, agent/ and report/ (running again continues)"""
    wandb: Literal["offline", "disabled"] = "offline"
    """experiment tracking: offline writes local wandb runs (sync later with wandb sync)"""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)"""


def run_demo_command(args: DemoArgs) -> None:
    """Run the demo and print the results and where to look."""
    from dreamworld.jobs.demo import run_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    summary = run_demo(args, args.out, wandb=args.wandb)
    fid, returns, paths = summary["fidelity"], summary["real_returns"], summary["paths"]
    last = str(fid["horizon"]) if str(fid["horizon"]) in fid["psnr"] else max(fid["psnr"], key=int)
    rows = {f"{stage} (s)": f"{seconds:.0f}" for stage, seconds in summary["stage_seconds"].items()}
    rows["total (s)"] = f"{summary['total_seconds']:.0f}"
    rows["real steps collected"] = summary["real_steps"]
    rows["PSNR h=1 (copy-last baseline)"] = f"{fid['psnr']['1']:.2f} ({fid['baseline_psnr']['1']:.2f})"
    rows[f"PSNR h={last} (copy-last baseline)"] = f"{fid['psnr'][last]:.2f} ({fid['baseline_psnr'][last]:.2f})"
    rows["reconstruction PSNR"] = f"{fid['reconstruction_psnr']:.2f}"
    rows["imagined steps of agent training"] = summary["agent"]["imagined_steps"]
    for name, r in returns.items():
        rows[f"real return: {name}"] = f"{r['mean_return']:.2f} ± {r['std_return']:.2f} ({r['episodes']} episodes)"
    rows |= {f"file: {name}": os.path.relpath(path, args.out) for name, path in paths.items()}  # under OUT
    print_table(f"dreamworld demo on {summary['env']} (files under {args.out}/)", rows)
    print(f"Look at {args.out}/report/: psnr.png (fidelity over the horizon), rollout.gif (real | dream | "
          f"difference), agent.gif (the agent in the real game), summary.json.")
