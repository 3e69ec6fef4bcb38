"""Helpers shared by the benchmark scripts (imported as `common`: the scripts run from this folder)."""

from __future__ import annotations

import json
import platform
from pathlib import Path


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


def head_f1(model, ds, held: list[int], fresh) -> dict:
    """Reward and termination F1 of `model` (dreamworld.evaluate.head_scores) on the held-out episodes `held` of
    the dataset `ds` and on every episode of `fresh`, a dataset recorded apart."""
    from dreamworld.evaluate import head_scores

    model.eval()
    h, f = head_scores(model, ds, held), head_scores(model, fresh, list(range(len(fresh))))
    return {"heldout_reward_f1": h["reward_f1"], "heldout_termination_f1": h["termination_f1"],
            "heldout_terminations": h["terminations"], "fresh_reward_f1": f["reward_f1"],
            "fresh_termination_f1": f["termination_f1"], "fresh_reward_events": f["reward_events"],
            "fresh_terminations": f["terminations"]}
