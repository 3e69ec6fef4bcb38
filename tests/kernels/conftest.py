"""Kernel tests run the Triton kernels in the interpreter on CPU tensors; tests marked gpu need compiled ones.

Triton picks interpreter or compiler when it is imported, so TRITON_INTERPRET is set here, before anything
imports it, as the root conftest does: to 1 only where CUDA is absent. With CUDA the kernels compile and the gpu
tests run, and the tests that run Triton on CPU tensors skip (run them with `TRITON_INTERPRET=1 pytest
tests/kernels`). Launch outputs are NaN-filled first, so an element a kernel never writes fails a test.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from dreamworld.kernels import launch  # noqa: E402


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Without the interpreter (CUDA present, TRITON_INTERPRET unset), a test that runs the Triton kernels on CPU
    tensors skips instead of failing: dispatch refuses them with "Triton cannot run on cpu tensors"."""
    try:
        return (yield)
    except RuntimeError as e:
        if not launch.interpreting() and "Triton cannot run on cpu tensors" in str(e):
            pytest.skip("runs the Triton kernels on CPU tensors: needs TRITON_INTERPRET=1")
        raise


@pytest.fixture(autouse=True)
def _kernel_test_env(request, monkeypatch):
    if request.node.get_closest_marker("gpu") is not None and launch.interpreting():
        pytest.skip("GPU tests need compiled kernels: unset TRITON_INTERPRET (pytest -m gpu tests/kernels)")
    monkeypatch.delenv("DREAMWORLD_ATTENTION", raising=False)
    monkeypatch.delenv("DREAMWORLD_RMS_NORM", raising=False)
    monkeypatch.setattr(launch, "POISON_OUTPUTS", True)
