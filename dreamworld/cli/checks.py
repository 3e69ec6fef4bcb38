"""Flag values checked before a command does anything: numbers in their range, directories and files that can be
read or written. A bad value stops the command with one line naming the flag and the fix (exit code 2), before
any file is written, instead of a traceback minutes later or a half-written output.

Every number of a command's dataclasses (nested ones included) is checked: an int is a whole number from 0 to
MAX_INT (at least 1 for the counts in `AT_LEAST_ONE`), a float a finite number from 0 to MAX_FLOAT (`FLOATS` narrows
or opens the range per name), and `CAPS` bounds what allocates memory per unit (envs, pixels, threads).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from pathlib import Path

MAX_INT = 2**31 - 1
"""No count, size or budget of dreamworld's goes past this (a step count past it would run for years)."""
MAX_FLOAT = 1e9
"""No rate, weight, budget or duration of dreamworld's goes past this."""

AT_LEAST_ONE = {
    "steps", "num_envs", "batch_size", "sequence_frames", "log_every", "horizon", "samples", "closed_loop_steps",
    "eval_samples", "real_steps", "steps_per_iteration", "collect_envs", "train_steps", "agent_steps", "agent_envs",
    "random_steps", "episodes", "episode_max_steps", "video_frames", "frames", "scale", "record_scale", "threads",
    "termination_hidden", "max_episode_steps", "eval_every", "eval_max_steps", "num_steps",
    "num_minibatches", "update_epochs", "size", "termination_channels", "tokenizer_channels", "dynamics_size",
}
"""Int flags that count something that must be there at least once (others may be 0)."""

CAPS = {"num_envs": 4096, "collect_envs": 4096, "agent_envs": 4096, "threads": 1024, "size": 4096, "scale": 64,
        "record_scale": 64, "termination_channels": 65536, "tokenizer_channels": 65536, "dynamics_size": 65536,
        "termination_hidden": 65536, "fps": 1000}
"""Upper bounds of the ints that allocate per unit (envs, pixels, channels, threads) or pace a window."""

SHARE = (0.0, 1.0, False)
POSITIVE = (0.0, MAX_FLOAT, True)
FLOATS = {
    **dict.fromkeys(["epsilon", "share", "event_share", "end_share", "warmup_share", "context_noise", "gamma", "lam",
                     "gae_lambda", "slow_critic", "return_decay"], SHARE),
    "holdout": (0.0, 0.99, False),
    **dict.fromkeys(["minutes", "train_minutes", "agent_minutes", "lr", "actor_lr", "critic_lr",
                     "checkpoint_seconds", "eval_seconds", "grad_clip", "max_grad_norm"], POSITIVE),
    "temperature": (0.0, 100.0, False),
    "rewind_seconds": (0.0, 3600.0, False),
}
"""Float flags whose range is not [0, MAX_FLOAT]: (low, high, low excluded)."""

DEVICE = re.compile(r"cpu|cuda(:\d+)?")

OUT_DIRS = {"out", "save_to", "recordings"}
"""Flags naming a directory a command writes into (created if new)."""
OUT_FILES = {"export": (".mp4", ".gif"), "record": ("", ".mp4", ".gif"), "screenshot": None}
"""Flags naming a file a command writes, with the suffixes it takes (None: any)."""
IN_DIRS = {"data", "checkpoint", "agent", "init"}
"""Flags naming a directory a command reads."""


class FlagError(ValueError):
    """A flag's value that the command cannot use; the message names the flag and the fix."""


def _flag(prefix: str, name: str) -> str:
    return f"--{prefix}{name.replace('_', '-')}"


def _omits_prefix(cls: type, field: dataclasses.Field) -> bool:
    """Whether tyro gives the nested dataclass in `field` of `cls` no prefix: its annotation carries
    tyro.conf.OmitArgPrefixes or renames the field to nothing (tyro.conf.arg(name=""))."""
    import tyro

    hint = typing.get_type_hints(cls, include_extras=True)[field.name]
    markers = typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated else ()
    return any(m is tyro.conf.OmitArgPrefixes or getattr(m, "name", None) == "" for m in markers)


def _fields(obj, prefix: str = ""):
    """(flag, field name, value) of every field of the dataclass `obj`, nested ones included."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _fields(value, prefix if _omits_prefix(type(obj), f) else f"{prefix}{f.name}.")
        else:
            yield _flag(prefix, f.name), f.name, value


def _number(flag: str, name: str, value) -> None:
    """Refuse an int or float outside the range its name gives it."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, tuple | list):
        for item in value:
            _number(flag, name, item)
        return
    if isinstance(value, int):
        low, high = (1 if name in AT_LEAST_ONE else 0), CAPS.get(name, MAX_INT)
        if not low <= value <= high:
            raise FlagError(f"{flag} {value}: give a whole number from {low} to {high:,}")
    elif isinstance(value, float):
        low, high, open_low = FLOATS.get(name, (0.0, MAX_FLOAT, False))
        if not math.isfinite(value) or value < low or value > high or (open_low and value == low):
            side = f"above {low:g}" if open_low else f"from {low:g}"
            raise FlagError(f"{flag} {value}: give a finite number {side} to {high:g}")


def _path(flag: str, value: str) -> Path:
    if not value.strip():
        raise FlagError(f"{flag} {value!r}: give a path, not an empty string")
    if "\0" in value:
        raise FlagError(f"{flag} {value!r}: a path cannot hold a NUL character")
    return Path(value)


def _exists(flag: str, path: Path) -> bool:
    try:
        return path.exists()
    except OSError as e:  # a name too long, ...
        raise FlagError(f"{flag} {str(path)!r} is not a usable path ({e.strerror}): pass another") from None


def _writable_parent(flag: str, path: Path) -> None:
    """Refuse `path` (not there yet) unless its nearest existing ancestor is a directory we may write in."""
    ancestor = path.absolute().parent
    while not _exists(flag, ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise FlagError(f"{flag} {str(path)!r} lies under {str(ancestor)!r}, which is a file: pass a path in a "
                        "directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise FlagError(f"{flag} {str(path)!r}: no permission to create it in {str(ancestor)!r}; pass a path in a "
                        "directory you may write to")


def out_dir(flag: str, value: str) -> None:
    """Refuse a directory a command is to write into unless it can be created or written to."""
    path = _path(flag, value)
    if not _exists(flag, path):
        _writable_parent(flag, path)
    elif not path.is_dir():
        raise FlagError(f"{flag} {value!r} is a file: pass a directory (new or existing)")
    elif not os.access(path, os.W_OK | os.X_OK):
        raise FlagError(f"{flag} {value!r}: no permission to write in it; pass a directory you may write to")


def out_file(flag: str, value: str, suffixes: tuple[str, ...] | None) -> None:
    """Refuse a file a command is to write unless it has one of `suffixes` and can be written."""
    path = _path(flag, value)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        names = " or ".join(s or "no suffix" for s in suffixes)
        raise FlagError(f"{flag} {value!r}: name a file ending in {names}")
    if _exists(flag, path) and path.is_dir():
        raise FlagError(f"{flag} {value!r} is a directory: pass a file name")
    if not _exists(flag, path):
        _writable_parent(flag, path)
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        raise FlagError(f"{flag} {value!r}: no permission to replace it; pass a file in a directory you may "
                        "write to")


def in_dir(flag: str, value: str) -> None:
    """Refuse a directory a command is to read unless it is one we may read."""
    path = _path(flag, value)
    if not _exists(flag, path):
        raise FlagError(f"{flag} {value!r} does not exist: pass an existing directory")
    if not path.is_dir():
        raise FlagError(f"{flag} {value!r} is a file: pass a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise FlagError(f"{flag} {value!r}: no permission to read it")


def device(flag: str, value: str) -> None:
    """Refuse a device torch does not name, or CUDA where there is none."""
    if not DEVICE.fullmatch(value):
        raise FlagError(f"{flag} {value!r}: give cpu, cuda or cuda:N")
    if value != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise FlagError(f"{flag} {value}: this machine has no CUDA device; pass --device cpu")


def _string(flag: str, name: str, value: str) -> None:
    if name in OUT_DIRS:
        out_dir(flag, value)
    elif name in OUT_FILES:
        out_file(flag, value, OUT_FILES[name])
    elif name in IN_DIRS:
        in_dir(flag, value)
    elif name == "device":
        device(flag, value)
    elif name == "policy":
        from dreamworld.envs import POLICIES

        if value not in POLICIES:
            try:
                in_dir(flag, value)
            except FlagError:
                raise FlagError(f"{flag} {value!r}: give one of {', '.join(POLICIES)} or an agent directory "
                                "(dreamworld train-agent)") from None


def check(args) -> None:
    """Raise a FlagError naming the first flag of `args` (a subcommand's dataclass) whose value is unusable."""
    for flag, name, value in _fields(args):
        if isinstance(value, str):
            _string(flag, name, value)
        else:
            _number(flag, name, value)
    if type(args).__name__ == "EvaluateArgs" and args.out is None:  # its report goes to CHECKPOINT/report
        out_dir("--out (default CHECKPOINT/report)", str(Path(args.checkpoint) / "report"))
