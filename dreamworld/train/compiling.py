"""torch.compile for the dynamics' training step: the transformer's elementwise work (rotary embeddings, norms,
GELU, the casts autocast inserts) fused into a few kernels around the matmuls.

On 2 CPU cores (AMX, bfloat16 autocast, tiny preset, 16 sequences of 16 frames) a dynamics step took 227-240 ms
compiled against 313 eagerly, timed by hand on real Catch batches (`benchmarks/train.py` on random data, a
busier moment: 326 against 425). The first step compiles: about 30 s with a cold cache, 4-5 s once inductor's cache
(in the system's temporary directory) holds the graph. `auto` therefore compiles only phases long enough to pay
that back. The attention runs as it is, outside the compiled graph (`dreamworld.kernels.attention`). Inductor needs
a C++ compiler on the CPU and a working Triton on CUDA.
"""

from __future__ import annotations

import shutil
from typing import Literal, get_args

import torch
from torch import nn

from dreamworld.kernels.launch import triton_ready

Compile = Literal["auto", "on", "off"]
COMPILE_CHOICES = get_args(Compile)
AUTO_MIN_SECONDS = 120.0
"""`auto` compiles a timed phase of at least this many seconds (the cold compile costs ~30 s; steps get ~25% faster)"""
AUTO_MIN_STEPS = 1000
"""`auto` compiles a phase of at least this many steps (given as --steps)"""
CXX = ("g++", "c++", "clang++")


def compiler_missing(device: torch.device | str) -> str | None:
    """Why torch.compile cannot run on `device` here, with the fix, or None when it can."""
    device = torch.device(device)
    if device.type == "cuda":
        return None if triton_ready(device) else "Triton cannot run on this GPU: install triton"
    if device.type == "cpu":
        return None if any(shutil.which(c) for c in CXX) else "no C++ compiler on the PATH: install g++"
    return f"dreamworld compiles only on cpu and cuda devices, not {device.type}"


def should_compile(choice: str, device: torch.device | str, steps: int | None, seconds: float | None) -> bool:
    """Resolve --dynamics.compile for a phase of `steps` steps or `seconds` seconds on `device`: `on` (an error
    naming the fix when it cannot), `off`, or `auto` (on when the phase is long enough to pay for compiling and it
    can)."""
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_CHOICES)}, got {choice!r}")
    missing = compiler_missing(device)
    if choice == "on" and missing:
        raise RuntimeError(f"--dynamics.compile on, but torch.compile cannot run: {missing}; or pass "
                           "--dynamics.compile off")
    if choice != "auto":
        return choice == "on"
    long_enough = (seconds or 0.0) >= AUTO_MIN_SECONDS or (steps or 0) >= AUTO_MIN_STEPS
    return long_enough and missing is None


def compiled(module: nn.Module) -> nn.Module:
    """`module` behind torch.compile (same parameters; shapes fixed: a new shape compiles anew)."""
    return torch.compile(module, dynamic=False)
