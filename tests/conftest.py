"""Test-wide settings: these must be set before dreamworld (and its kernels) are imported.

Property-based tests (hypothesis) run under the profile "dreamworld": no deadline (a busy 2-core CI machine makes
example times vary), 200 examples per property; each property runs again with 1,000 under `-m slow`
(strategies.EXAMPLES). `--hypothesis-profile NAME` picks another profile.
"""

import os

import torch

if not torch.cuda.is_available():  # importing torch does not import triton: the choice below still counts
    # Triton kernels run on CPU tensors in the interpreter; with CUDA they compile, so the gpu tests run
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame windows without a screen
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("WANDB_MODE", "disabled")  # tests about tracking switch to offline themselves
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("dreamworld", max_examples=200, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("dreamworld")


def pytest_collection_modifyitems(config, items):
    """Skip tests marked gpu when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: small networks gain nothing from intra-op threads, and on a busy CPU
    those threads wait for each other. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _keep_subnormals():
    """`train()` and `train_agent()` flush denormals for the whole process (a CPU speed-up); a test that runs them
    in-process must not leave that on for the next ones (hypothesis refuses to draw floats without subnormals)."""
    yield
    torch.set_flush_denormal(False)
