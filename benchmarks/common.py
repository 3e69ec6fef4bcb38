"""Helpers shared by the benchmark scripts (imported as `common`: the scripts run from this folder)."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import fields, replace
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


def metadata() -> dict:
    """What every result file records: the date, the device (the CUDA GPU when there is one, else the CPU) and the
    versions of torch, Triton and Python."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()
    return {"date": time.strftime("%Y-%m-%d"), "device": device, "torch": torch.__version__,
            "triton": triton_version(), "python": platform.python_version()}


def write_results(path: str | Path, results: dict) -> None:
    """Write a benchmark's results as indented JSON to `path`, creating its folder: `metadata()` first, then the
    benchmark's entries (which win where they name the same key, e.g. a device with its thread count)."""
    results = {**metadata(), **results}
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
