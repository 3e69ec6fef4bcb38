"""The world model on a CUDA device, where its attention and norms run through the compiled Triton kernels:
the same numbers as the PyTorch path, KV-cache generation equal to the teacher-forced pass, bfloat16 training
close to float32. On a CUDA machine the conftest leaves TRITON_INTERPRET unset, so the kernels compile:
`pytest -m gpu tests/test_gpu_model.py`."""

import pytest
import torch
from toy_models import assert_compiled_matches_eager, dynamics_loss_and_grads, random_dynamics_batch, toy_config

from dreamworld.kernels import launch
from dreamworld.model.world_model import WorldModel

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture
def model(monkeypatch):
    if launch.interpreting():
        pytest.skip("needs compiled kernels: unset TRITON_INTERPRET")
    monkeypatch.delenv("DREAMWORLD_ATTENTION", raising=False)
    monkeypatch.delenv("DREAMWORLD_RMS_NORM", raising=False)
    torch.manual_seed(0)
    return WorldModel(toy_config(context=4, frame_termination=False)).cuda().eval()


def _batch(model, B=3, T=9, seed=0):
    return random_dynamics_batch(model, B, T, seed, device="cuda")


def test_triton_path_equals_torch_path(model, monkeypatch):
    batch = _batch(model)
    args = (batch["tokens"][:, :-1], batch["actions"], batch["tokens"][:, 1:])
    with torch.no_grad():
        triton_out = model.dynamics(*args)
        monkeypatch.setenv("DREAMWORLD_ATTENTION", "torch")
        monkeypatch.setenv("DREAMWORLD_RMS_NORM", "torch")
        torch_out = model.dynamics(*args)
    for ours, ref in zip(triton_out, torch_out, strict=True):
        if ref is not None:
            torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


def test_kv_cache_on_gpu_equals_the_full_pass(model):
    batch = _batch(model)
    tokens, actions = batch["tokens"], batch["actions"]
    with torch.no_grad():
        full_logits, full_reward, _ = model.dynamics(tokens[:, :-1], actions, tokens[:, 1:])
        cache = model.dynamics.empty_cache()
        for t in range(actions.shape[1]):  # past the window of 4 frames: the cache slides
            h = model.dynamics.step(tokens[:, t], actions[:, t], cache)
            reward, _ = model.dynamics.outcomes(h, tokens[:, t + 1])
            torch.testing.assert_close(model.dynamics.token_logits(h), full_logits[:, t], atol=2e-5, rtol=1e-4)
            torch.testing.assert_close(reward, full_reward[:, t], atol=2e-5, rtol=1e-4)


def test_bfloat16_training_step_on_gpu_close_to_float32(model):
    model.train()
    losses, grads = dynamics_loss_and_grads(model, _batch(model, B=4, T=8, seed=1), "cuda")
    assert abs(losses["bfloat16"] - losses["float32"]) < 0.02 * losses["float32"], losses
    assert torch.nn.functional.cosine_similarity(grads["bfloat16"], grads["float32"], dim=0) > 0.99


def test_compiled_training_step_on_gpu_matches_eager(model):
    """What `--compile on` trains on CUDA: inductor's graph around the Triton attention (left out of the graph) gives
    the eager loss and gradients, in float32 and bfloat16, all finite."""
    from dreamworld.train.compiling import compiler_missing

    if missing := compiler_missing("cuda"):
        pytest.skip(missing)
    model.train()
    assert_compiled_matches_eager(model, _batch(model, B=4, T=8, seed=2), "cuda", loss_rtol=2e-3)


def test_dream_on_gpu_runs_and_is_seeded(model):
    frames = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    actions = torch.randint(0, 3, (2, 8))
    runs = [model.imagine(frames, actions, temperature=1.0, generator=torch.Generator("cuda").manual_seed(3))
            for _ in range(2)]
    assert runs[0][0].shape == (2, 6, 64, 64, 3) and runs[0][0].device.type == "cuda"
    for a, b in zip(runs[0], runs[1], strict=True):
        assert torch.equal(a, b)


def test_outcome_phase_on_gpu(model):
    """The outcome phase's states computed on the GPU equal the dynamics' own, and its loss trains the heads there."""
    from dreamworld.train.data import Steps
    from dreamworld.train.outcome import OutcomeStates, outcome_heads, outcome_loss

    T = 12
    batch = _batch(model, B=1, T=T, seed=2)
    rewards = torch.zeros(T + 1)
    rewards[[3, 7]] = 1.0
    valid = torch.arange(T + 1) < T
    steps = Steps(frames=None, actions=torch.cat([batch["actions"][0].cpu(), batch["actions"][0, -1:].cpu()]),
                  rewards=rewards, ends=torch.zeros(T + 1, dtype=torch.bool), valid=valid,
                  episode_start=torch.zeros(T + 1, dtype=torch.long))
    tokens = batch["tokens"][0].cpu()  # (T + 1, N)
    pool = OutcomeStates(model, steps, tokens, 0.5, torch.Generator().manual_seed(0), progress=False)
    with torch.no_grad():
        first = model.dynamics.hidden(batch["tokens"][:, :8], batch["actions"][:, :8])[0]  # one chunk of 2 x 4 frames
    torch.testing.assert_close(pool.states[:8].float(), first.cpu(), atol=0.02, rtol=0.02)  # kept as bfloat16
    assert len(pool.events) == 2
    loss, _ = outcome_loss(model, pool.sample(32, "cuda"))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in outcome_heads(model).parameters())
