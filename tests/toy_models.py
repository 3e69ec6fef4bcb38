"""A world model small enough for unit tests (imported by the tests as `toy_models`)."""

import gymnasium as gym

from dreamworld.model.dynamics import DynamicsConfig
from dreamworld.model.termination import TerminationConfig
from dreamworld.model.tokenizer import TokenizerConfig
from dreamworld.model.world_model import WorldModelConfig


def toy_config(action_space=None, context=4, frame_termination=True) -> WorldModelConfig:
    """A world model small enough for unit tests (16 tokens per frame, 2 layers); `frame_termination` False reads
    terminations with the dynamics' outcome head instead of the termination CNN."""
    from dreamworld.envs import space_to_json

    space = action_space or gym.spaces.Discrete(3)
    return WorldModelConfig(
        tokenizer=TokenizerConfig(channels=[8, 8, 16, 16], blocks=[0, 0, 0, 1], levels=[5, 4, 3], groups=4),
        dynamics=DynamicsConfig(d_model=64, n_layers=2, n_heads=2, context_frames=context),
        termination=TerminationConfig(channels=[8, 8, 8], hidden=32) if frame_termination else None,
        env_id="Toy-v0", action_space=space_to_json(space))


def random_dynamics_batch(model, B: int, T: int, seed: int = 0, events: bool = False, device: str = "cpu") -> dict:
    """A `dynamics_loss` batch of random tokens and actions (3 actions): T steps of B sequences; with `events`, a
    reward, a penalty and an ending in it (else none)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(model.tokenizer.vocab_size, (B, T + 1, model.tokenizer.tokens_per_frame), generator=g)
    actions = torch.randint(0, 3, (B, T), generator=g)
    rewards, ends = torch.zeros(B, T), torch.zeros(B, T, dtype=torch.bool)
    if events:
        rewards[0, 1], rewards[-1, 3], ends[-1, -1] = 1.0, -1.0, True
    batch = {"tokens": tokens, "actions": actions, "rewards": rewards, "ends": ends,
             "mask": torch.ones(B, T, dtype=torch.bool)}
    return {key: value.to(device) for key, value in batch.items()}


def dynamics_loss_and_grads(model, batch: dict, device: str, forward=None) -> tuple[dict, dict]:
    """The dynamics loss and its flattened gradients under float32 and under bfloat16 autocast on `device`:
    ({precision: loss}, {precision: grads}); `forward` as for `dynamics_loss` (a compiled dynamics)."""
    import torch

    from dreamworld.model.precision import autocast
    from dreamworld.train.config import TrainConfig
    from dreamworld.train.trainer import dynamics_loss

    losses, grads = {}, {}
    for precision in ("float32", "bfloat16"):
        model.zero_grad()
        with autocast(precision, device):
            loss, _ = dynamics_loss(model, batch, TrainConfig(), forward)
        loss.backward()
        losses[precision] = loss.item()
        grads[precision] = torch.cat([p.grad.flatten() for p in model.dynamics.parameters() if p.grad is not None])
    return losses, grads


def assert_compiled_matches_eager(model, batch: dict, device: str, loss_rtol: float) -> None:
    """The compiled dynamics (dreamworld.train.compiling) give the eager loss (within `loss_rtol`) and gradients (cosine
    > 0.999), all finite, in float32 and under bfloat16 autocast."""
    import torch

    from dreamworld.train.compiling import compiled

    eager_losses, eager_grads = dynamics_loss_and_grads(model, batch, device)
    losses, grads = dynamics_loss_and_grads(model, batch, device, compiled(model.dynamics))
    for precision in ("float32", "bfloat16"):
        assert torch.isfinite(grads[precision]).all(), precision
        assert abs(losses[precision] - eager_losses[precision]) < loss_rtol * eager_losses[precision], precision
        cosine = torch.nn.functional.cosine_similarity(grads[precision], eager_grads[precision], dim=0)
        assert cosine > 0.999, (precision, cosine)


def end_module(model):
    """The module whose `end_head` decides a dream's terminations."""
    return model.dynamics if model.termination is None else model.termination
