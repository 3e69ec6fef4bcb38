"""Plumbing shared by the Triton launchers: backend availability, mode checks, output allocation.

Triton decides at import whether `@triton.jit` compiles or interprets (TRITON_INTERPRET), for its own
library as well as for these kernels, so the variable must be set before anything imports triton.
`dreamworld.kernels` imports triton only when a Triton kernel first runs. Nothing here touches
`triton.runtime.driver.active` at import time.
"""

import functools
import os

import torch

# Test hook: when True, launchers fill their outputs with NaN before the kernels run, so an element a kernel
# forgets to write shows up as NaN instead of as leftover memory.
POISON_OUTPUTS = False

_TRUE = ("1", "true", "on", "yes")


def interpreting() -> bool:
    """Whether TRITON_INTERPRET asks for the Triton interpreter (kernels on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUE


@functools.cache
def _cuda_driver_active() -> bool:
    try:
        import triton

        triton.runtime.driver.active.get_current_target()
    except Exception:  # no triton, no driver, or a driver that cannot start: all mean "use PyTorch"
        return False
    return True


def triton_ready(device: torch.device) -> bool:
    """Whether Triton kernels can run on tensors living on `device` right now."""
    if interpreting():
        return True
    return device.type == "cuda" and _cuda_driver_active()


def check_mode(kernel) -> None:
    """Raise if TRITON_INTERPRET now disagrees with how `kernel` (a @triton.jit function) was built."""
    import triton

    if interpreting() == isinstance(kernel, triton.runtime.JITFunction):
        raise RuntimeError(
            "TRITON_INTERPRET changed after triton was imported: set it before anything imports triton "
            "(first lines of conftest.py, or in the shell)"
        )


def new_output(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised tensor for a kernel to fill (NaN-filled when POISON_OUTPUTS is set)."""
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (n >= 1)."""
    return 1 << (n - 1).bit_length()
