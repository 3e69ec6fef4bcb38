"""Mixed precision: run matmuls and convolutions in bfloat16 where the hardware does them natively.

bfloat16 autocast keeps the weights, the optimiser and the losses in float32 and halves the cost of the
dynamics transformer's matmuls on a CPU with AVX512-BF16 or AMX (measured in benchmarks/train.py) and on CUDA
GPUs from Ampere on. Where the hardware lacks it, bfloat16 is emulated and slower, so `auto` keeps float32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Literal

import torch

Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS = ("auto", "float32", "bfloat16")


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bfloat16 matmuls natively (CUDA with bf16 support; CPU with AVX512-BF16/AMX)."""
    return _native_bf16(torch.device(device).type)


@cache
def _native_bf16(device_type: str) -> bool:
    """`native_bf16` by device type, probed once per process (autocast asks on every training or dream step)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(probe is not None and probe() for probe in probes)
    return False


def resolve(precision: str, device: torch.device | str) -> str:
    """`auto` -> bfloat16 where `device` does it natively, else float32; other values are checked and kept."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return precision


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """A context that runs the forward pass at `precision` (resolved with `resolve`) on `device`."""
    device = torch.device(device)
    if resolve(precision, device) == "float32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def flush_denormals() -> None:
    """Let the CPU treat denormal floats (below 1.2e-38) as zero. Without it, a training step whose gradients
    shrink into that range runs on the CPU's slow path: the termination CNN, once its loss fell to ~1e-3, took
    600 ms a step instead of 25 ms on 2 cores, with the same losses (docs/experiments.md). The flag is per
    thread and torch's worker threads copy it when they start, so call this before torch's first parallel
    operation: the `dreamworld` command does so first thing; `train` and `train_agent` call it too."""
    torch.set_flush_denormal(True)
