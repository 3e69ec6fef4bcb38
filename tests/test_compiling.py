"""torch.compile for the dynamics' training step: the same loss and gradients as eager, the rule `auto` follows,
and a clear error where compiling cannot run; the multi-hot digit embedding equals the table it replaced."""

import pytest
import torch
from toy_models import assert_compiled_matches_eager, random_dynamics_batch, toy_config

from dreamworld.model.world_model import WorldModel
from dreamworld.train.compiling import AUTO_MIN_SECONDS, AUTO_MIN_STEPS, compiler_missing, should_compile


def test_digit_embeddings_equal_the_sum_of_table_rows():
    """`embed_tokens` (a multi-hot matmul) gives what the embedding table summed over a token's digits gives, and
    the same gradient, so worlds trained before it behave as they did."""
    torch.manual_seed(0)
    dyn = WorldModel(toy_config()).dynamics
    tokens = torch.randint(int(torch.tensor(dyn.levels).prod()), (3, 4, 16))
    table = dyn.digit_embed(dyn.digits(tokens) + dyn.offsets).sum(-2)  # (3, 4, 16, C)
    (grad_table,) = torch.autograd.grad(table.square().sum(), dyn.digit_embed.weight)
    multi_hot = dyn.embed_tokens(tokens)
    (grad_hot,) = torch.autograd.grad(multi_hot.square().sum(), dyn.digit_embed.weight)
    torch.testing.assert_close(multi_hot, table, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad_hot, grad_table, atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(compiler_missing("cpu") is not None, reason="torch.compile needs a C++ compiler on the CPU")
def test_compiled_training_step_matches_eager():
    """In float32 and under bfloat16 autocast the compiled dynamics give the eager loss and gradients, all finite
    (compiled in bfloat16, the outcome head's amax pooling once gave NaN gradients)."""
    torch.manual_seed(1)
    model = WorldModel(toy_config(context=3, frame_termination=False))
    batch = random_dynamics_batch(model, B=2, T=5, events=True)  # events: the reward pooling's gradients matter
    assert_compiled_matches_eager(model, batch, "cpu", loss_rtol=1e-3)


def test_auto_compiles_long_phases_only():
    missing = compiler_missing("cpu")
    assert not should_compile("auto", "cpu", None, AUTO_MIN_SECONDS - 1)
    assert not should_compile("auto", "cpu", AUTO_MIN_STEPS - 1, None)
    assert should_compile("auto", "cpu", None, AUTO_MIN_SECONDS) == (missing is None)
    assert should_compile("auto", "cpu", AUTO_MIN_STEPS, None) == (missing is None)
    assert not should_compile("off", "cpu", None, 3600)
    with pytest.raises(ValueError, match="auto, on, off"):
        should_compile("yes", "cpu", None, 60)


def test_compile_on_without_a_compiler_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no g++, c++ or clang++
    assert "install g++" in compiler_missing("cpu")
    with pytest.raises(RuntimeError, match="install g\\+\\+.*--dynamics.compile off"):
        should_compile("on", "cpu", 10, None)
    assert not should_compile("auto", "cpu", None, 3600)  # auto trains eagerly instead
