"""Helpers shared by the benchmark scripts (imported as `common`: the scripts run from this folder)."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def triton_version() -> str | None:
    """The installed Triton's version, or None without Triton."""
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def write_results(path: str | Path, results: dict) -> None:
    """Write a benchmark's results as indented JSON to `path`, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {path}")


def save_results(args, **entries) -> dict:
    """A benchmark's results: the date, the machine (`args.threads` threads) and the versions, then `entries` in
    order; written to `args.json` when it is given."""
    results = {"date": time.strftime("%Y-%m-%d"), "device": f"{cpu_name()}, {args.threads} threads",
               "torch": torch.__version__, "python": platform.python_version(), **entries}
    if args.json:
        write_results(args.json, results)
    return results


def head_f1(model, ds, held: list[int], fresh) -> dict:
    """Reward and termination F1 of `model` (dreamworld.evaluate.fidelity.head_scores) on the held-out episodes `held`
    of the dataset `ds` and on every episode of `fresh`, a dataset recorded apart."""
    from dreamworld.evaluate.fidelity import head_scores

    model.eval()
    h, f = head_scores(model, ds, held), head_scores(model, fresh, list(range(len(fresh))))
    return {"heldout_reward_f1": h["reward_f1"], "heldout_termination_f1": h["termination_f1"],
            "heldout_terminations": h["terminations"], "fresh_reward_f1": f["reward_f1"],
            "fresh_termination_f1": f["termination_f1"], "fresh_reward_events": f["reward_events"],
            "fresh_terminations": f["terminations"]}


@dataclass
class PhaseArgs:
    """What the phase benchmarks (outcome_phase.py, termination_phase.py) share: a world, its data, a fresh set."""

    checkpoint: str
    """a trained world model (a run directory or a shipped world)"""
    data: str
    """the dataset it was trained on (its training split feeds the phase, its held-out split is scored)"""
    fresh: str
    """a dataset recorded apart (every episode is scored)"""
    out: str | None = None
    """save the model with what the phase trained here (with the checkpoint's start contexts)"""
    threads: int = 2
    """torch CPU threads"""
    seed: int = 0
    """seed of the phase (its sampling, and new weights where it starts some)"""
    json: str | None = None
    """write the results to this JSON file"""


def load_phase_inputs(args: PhaseArgs):
    """Threads and seed set -> (the world model, its dataset, the fresh dataset, training and held-out episodes)."""
    import torch

    import dreamworld
    from dreamworld.envs import EpisodeDataset
    from dreamworld.train.config import TrainConfig
    from dreamworld.train.data import split_episodes

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ds = EpisodeDataset(args.data)
    train_eps, held = split_episodes(ds, TrainConfig().holdout)
    return dreamworld.load(args.checkpoint), ds, EpisodeDataset(args.fresh), train_eps, held


def apply_settings(cfg, settings: list[str], variant: str, example: str):
    """(`cfg` with each FIELD=VALUE of `settings` applied, the learning rate an lr=VALUE names or None), for a
    benchmark's `--variants` entry `variant`: number fields take numbers, text fields text (encoder=patches), lists
    of ints are written 16,32,32. Anything else exits naming the entry and `example`."""
    lr, names = None, {f.name for f in fields(cfg)}
    for setting in settings:
        name, _, value = setting.partition("=")
        current = getattr(cfg, name, None) if name in names else None
        if name == "lr":
            lr = float(value)
        elif isinstance(current, (int, float)) and not isinstance(current, bool):
            cfg = replace(cfg, **{name: type(current)(float(value))})
        elif isinstance(current, str):
            cfg = replace(cfg, **{name: value})
        elif isinstance(current, list):
            cfg = replace(cfg, **{name: [int(v) for v in value.split(",")]})
        else:
            raise SystemExit(f"--variants {variant!r}: {name!r} is not a number or list field of {type(cfg).__name__} "
                             f"nor lr; write e.g. {example}")
    return cfg, lr
