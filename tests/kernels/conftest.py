"""Kernel tests run the Triton kernels in the interpreter on CPU tensors; tests marked gpu need compiled ones.

Triton picks interpreter or compiler when it is imported, so TRITON_INTERPRET is set here, before anything
imports it (the root conftest does the same). Run the GPU tests in their own process:
`TRITON_INTERPRET=0 pytest -m gpu tests/kernels`. Launch outputs are NaN-filled first, so an element a
kernel never writes fails a test.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from dreamworld.kernels import launch  # noqa: E402


@pytest.fixture(autouse=True)
def _kernel_test_env(request, monkeypatch):
    if request.node.get_closest_marker("gpu") is not None and launch.interpreting():
        pytest.skip("GPU tests need compiled kernels: run TRITON_INTERPRET=0 pytest -m gpu tests/kernels")
    monkeypatch.delenv("DREAMWORLD_ATTENTION", raising=False)
    monkeypatch.delenv("DREAMWORLD_RMS_NORM", raising=False)
    monkeypatch.setattr(launch, "POISON_OUTPUTS", True)
