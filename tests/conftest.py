"""Test-wide settings: these must be set before dreamworld (and its kernels) are imported."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels run on CPU tensors in the interpreter
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame windows without a screen
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("WANDB_MODE", "disabled")  # tests about tracking switch to offline themselves
os.environ.setdefault("WANDB_SILENT", "true")

import gymnasium as gym  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dreamworld.dynamics import DynamicsConfig  # noqa: E402
from dreamworld.tokenizer import TokenizerConfig  # noqa: E402
from dreamworld.world_model import WorldModelConfig  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Skip tests marked gpu when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def toy_config(action_space=None, context=4) -> WorldModelConfig:
    """A world model small enough for unit tests (16 tokens per frame, 2 layers)."""
    from dreamworld.envs import space_to_json

    space = action_space or gym.spaces.Discrete(3)
    return WorldModelConfig(
        tokenizer=TokenizerConfig(channels=[8, 8, 16, 16], blocks=[0, 0, 0, 1], levels=[5, 4, 3], groups=4),
        dynamics=DynamicsConfig(d_model=64, n_layers=2, n_heads=2, context_frames=context),
        env_id="Toy-v0", action_space=space_to_json(space))
