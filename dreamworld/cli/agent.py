"""`dreamworld train-agent` and `dreamworld loop`: agents trained inside the dream, and the full
collect -> world model -> agent loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dreamworld.console import print_table
from dreamworld.jobs.loop import LoopConfig
from dreamworld.jobs.train_agent import AgentConfig


@dataclass(kw_only=True)
class TrainAgentArgs(AgentConfig):
    """Train an agent only inside a world model's dream; every K updates it plays E episodes in the real game and
    logs the real return, the imagined return and their gap."""

    checkpoint: str | None
    """run directory of the world model to dream with (optional only with --train-in real and pixels)"""
    out: str
    """agent directory (config.json + model.safetensors, and wandb files)"""
    init: str | None = None
    """agent directory to continue training from"""
    wandb: Literal["offline", "online", "disabled"] = "offline"
    """experiment tracking: offline writes a local wandb run (sync later), online needs network"""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)"""


@dataclass(kw_only=True)
class LoopArgs(LoopConfig):
    """The full loop (IRIS/DIAMOND): collect with the current agent, train the world model, train the agent in
    imagination, repeat until the real-step cap. Resumable: run the same command again after a kill."""

    env: str
    """real env id: a built-in game (Bricks, Cave, Catch) or any Gymnasium pixel env"""
    out: str
    """loop directory: data/, world_model/, agent/ and loop.json (the loop's state)"""
    wandb: Literal["offline", "online", "disabled"] = "offline"
    """experiment tracking: offline writes local wandb runs (sync later), online needs network"""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)"""


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def run_train_agent(args: TrainAgentArgs) -> None:
    """Train the agent and print the summary table."""
    from dreamworld.jobs.train_agent import train_agent

    if args.threads:
        torch.set_num_threads(args.threads)
    summary = train_agent(args.checkpoint, args.out, args, init=args.init, wandb=args.wandb)
    rows = {"agent": args.out, "algorithm / trained in": f"{args.algo} / {args.train_in}",
            "env steps": summary["steps"], "updates": summary["updates"], "seconds": f"{summary['seconds']:.0f}"}
    names = {"agent/real_return": "real return", "agent/imagined_return": "imagined return",
             "agent/return_gap": "gap (imagined - real)", "agent/real_length": "real episode length"}
    rows |= {label: _fmt(summary[key]) for key, label in names.items() if key in summary}
    if "final_real_return" in summary:
        rows[f"real return, {summary['final_episodes']} full episodes"] = (
            f"{summary['final_real_return']:.2f} ± {summary['final_real_return_std']:.2f}")
    print_table(f"dreamworld train-agent on {summary['env_id']}", rows)


def run_loop(args: LoopArgs) -> None:
    """Run or resume the loop and print one row per iteration."""
    from dreamworld.jobs.loop import loop

    if args.threads:
        torch.set_num_threads(args.threads)
    state = loop(args.env, args.out, args, wandb=args.wandb)
    rows = {f"iteration {h['iteration']} ({h['real_steps']} real steps)":
            f"real {h.get('real_return', float('nan')):.2f}, imagined {h.get('imagined_return', float('nan')):.2f}"
            for h in state["history"]}
    if "final" in state:
        f = state["final"]
        rows[f"final agent, {f['episodes']} full episodes"] = f"{f['real_return']:.2f} ± {f['real_return_std']:.2f}"
    rows["agent"] = state["agent"]
    print_table(f"dreamworld loop on {args.env}", rows)
