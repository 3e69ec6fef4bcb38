"""The world model: KV-cache generation equals the teacher-forced pass, checkpoints, training guards."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from toy_models import dynamics_loss_and_grads, toy_config

from dreamworld.checkpoint import load, save_model
from dreamworld.io import CheckpointError, read_safetensors
from dreamworld.model.world_model import WorldModel


def _inputs(model, B=2, T=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(model.tokenizer.vocab_size, (B, T, model.tokenizer.tokens_per_frame), generator=g)
    actions = torch.stack([torch.as_tensor(np.stack([model.action_space.sample() for _ in range(T)]))
                           for _ in range(B)])
    return tokens, actions


@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,), np.float32)])
def test_kv_cache_steps_equal_the_full_pass(space):
    torch.manual_seed(0)
    model = WorldModel(toy_config(space, frame_termination=False)).eval()
    model.action_space.seed(0)
    tokens, actions = _inputs(model, T=5)
    acts = model.actions_tensor(actions[:, :-1])
    full_logits, full_reward, full_end = model.dynamics(tokens[:, :-1], acts, tokens[:, 1:])
    cache = model.dynamics.empty_cache()
    for t in range(4):
        h = model.dynamics.step(tokens[:, t], acts[:, t], cache)
        reward, end = model.dynamics.outcomes(h, tokens[:, t + 1])
        torch.testing.assert_close(model.dynamics.token_logits(h, tokens[:, t + 1]), full_logits[:, t], atol=1e-5,
                                   rtol=1e-4)
        torch.testing.assert_close(reward, full_reward[:, t], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(end, full_end[:, t], atol=1e-5, rtol=1e-4)


def test_end_module_read_the_next_frame():
    """The reward and termination of a step depend on the frame it led to (the outcome head sees it)."""
    torch.manual_seed(4)
    model = WorldModel(toy_config(frame_termination=False)).eval()
    tokens, actions = _inputs(model, T=3)
    acts = model.actions_tensor(actions)
    _, reward_a, end_a = model.dynamics(tokens, acts, tokens)
    _, reward_b, end_b = model.dynamics(tokens, acts, tokens.roll(1, dims=2))
    assert not torch.allclose(reward_a, reward_b) and not torch.allclose(end_a, end_b)


def test_sliding_window_sees_only_the_last_frames():
    """After many steps the cache holds only context_frames - 1 frames, and a cached step still equals the
    teacher-forced pass over the whole sequence (windowed attention in both), wherever it starts: rotary
    positions make the result depend on relative frame distances only."""
    torch.manual_seed(1)
    model = WorldModel(toy_config(context=3)).eval()
    tokens, actions = _inputs(model, B=1, T=40)
    actions = model.actions_tensor(actions)
    cache = model.dynamics.empty_cache()
    for t in range(40):
        states = model.dynamics.step(tokens[:, t], actions[:, t], cache)
    assert cache.keys[0].shape[2] == 2 * model.tokenizer.tokens_per_frame  # context - 1 frames kept
    full = model.dynamics.hidden(tokens, actions)
    torch.testing.assert_close(states, full[:, -1], atol=1e-4, rtol=1e-4)
    shifted = model.dynamics.hidden(tokens[:, -12:], actions[:, -12:])  # 28 later
    torch.testing.assert_close(shifted[:, -1], full[:, -1], atol=1e-4, rtol=1e-4)


def test_digits_match_the_tokenizer_codes():
    model = WorldModel(toy_config())
    idx = torch.arange(model.tokenizer.vocab_size)
    codes = model.tokenizer.fsq.indices_to_codes(idx)  # (V, dims) in [-1, 1]
    levels = torch.tensor(model.cfg.tokenizer.levels)
    expected = ((codes + 1) * (levels - 1) / 2).round().long()
    torch.testing.assert_close(model.dynamics.digits(idx), expected)


def test_encoding_no_frames_gives_no_tokens():
    """An empty batch (an episode too short to hold a window, say) encodes to an empty token tensor of the right
    shape, not a reshape error."""
    model = WorldModel(toy_config()).eval()
    assert model.encode(torch.zeros(2, 0, 64, 64, 3, dtype=torch.uint8)).shape == (2, 0, 16)


def test_temperature_zero_is_greedy_and_sampling_is_seeded():
    torch.manual_seed(2)
    cfg = toy_config()
    model = WorldModel(cfg).eval()
    states = torch.randn(3, 16, cfg.dynamics.d_model)
    a = model.dynamics.sample(states, 0.0)
    assert torch.equal(a, model.dynamics.sample(states, 0.0))
    s1 = model.dynamics.sample(states, 1.0, torch.Generator().manual_seed(5))
    s2 = model.dynamics.sample(states, 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(s1, s2) and not torch.equal(s1, a)


def test_coherent_sampler_draws_what_training_scores():
    """Token by token and digit by digit, the sampler's choices are the argmax of the logits the teacher-forced
    pass gives for the very tokens it chose: training scores the same conditionals that sampling draws from."""
    torch.manual_seed(6)
    model = WorldModel(toy_config()).eval()
    for p in model.dynamics.decoder.parameters():  # an untrained decoder is near uniform: make choices sharp
        torch.nn.init.normal_(p, std=0.5)
    states = torch.randn(4, 16, model.cfg.dynamics.d_model)
    tokens = model.dynamics.sample(states, 0.0)
    logits = model.dynamics.token_logits(states, tokens)  # (4, 16, sum(levels)) given the chosen tokens
    greedy = torch.stack([part.argmax(-1) for part in logits.split(model.dynamics.levels, -1)], -1)  # (4, 16, D)
    torch.testing.assert_close(greedy, model.dynamics.digits(tokens))
    earlier = model.dynamics.token_logits(states, tokens.roll(1, dims=1))  # other tokens before the last one
    assert not torch.allclose(earlier[:, -1], logits[:, -1])


def test_sampler_groups_lie_apart_and_see_only_earlier_groups():
    """Tokens drawn together sit a stride apart; a token's logits change with the tokens of earlier groups and
    with none of its own group's or later groups' (no token sees its own answer)."""
    from dreamworld.model.token_decoder import group_order

    order = group_order((4, 4), (2, 4))  # 8 groups of 2
    rows, cols = order // 4, order % 4
    assert torch.equal(rows[:2], torch.tensor([0, 2])) and torch.equal(cols[:2], torch.tensor([0, 0]))
    assert sorted(order.tolist()) == list(range(16))
    torch.manual_seed(8)
    model = WorldModel(toy_config()).eval()
    for p in model.dynamics.decoder.parameters():
        torch.nn.init.normal_(p, std=0.5)
    states = torch.randn(1, 16, model.cfg.dynamics.d_model)
    tokens = torch.randint(model.tokenizer.vocab_size, (1, 16))
    logits = model.dynamics.token_logits(states, tokens)
    for k, position in enumerate(order.tolist()):
        changed = tokens.clone()
        changed[0, position] = (changed[0, position] + 1) % model.tokenizer.vocab_size
        moved = (model.dynamics.token_logits(states, changed) - logits).abs().amax(-1)[0] > 1e-6  # (16,)
        moved[position] = False  # its own later digits see its earlier ones
        group_end = 2 * (k // 2 + 1)
        assert not moved[order[:group_end]].any()  # neither its group nor earlier ones see it
        assert group_end == 16 or moved[order[group_end:]].any()  # later groups do


def test_coherent_sampler_draws_from_the_joint_distribution():
    """At temperature 1 the sampled tokens follow the decoder's own joint distribution: the frequency of each
    whole code of the first token drawn matches the product of its digits' conditionals."""
    torch.manual_seed(7)
    model = WorldModel(toy_config()).eval()
    for p in model.dynamics.decoder.parameters():
        torch.nn.init.normal_(p, std=0.3)
    state = torch.randn(1, 16, model.cfg.dynamics.d_model).expand(4000, -1, -1)
    first = model.dynamics.decoder.order[0]
    drawn = model.dynamics.sample(state, 1.0, torch.Generator().manual_seed(0))  # (4000, 16)
    code, count = drawn[:, first].unique(return_counts=True)
    top = code[count.argmax()]
    tokens = drawn[:1].clone()
    tokens[0, first] = top
    logits = model.dynamics.token_logits(state[:1], tokens)[0, first]  # (sum(levels),)
    log_p = sum(part.log_softmax(-1)[digit] for part, digit in
                zip(logits.split(model.dynamics.levels), model.dynamics.digits(top), strict=True))
    assert abs(count.max().item() / 4000 - log_p.exp().item()) < 0.03


def test_checkpoint_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(3)
    model = WorldModel(toy_config()).eval()
    save_model(tmp_path, model, {"note": "test"})
    loaded = load(tmp_path)
    frames = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    actions = torch.tensor([[0, 1, 2, 1, 0], [2, 2, 1, 0, 1]])
    out_a = model.imagine(frames, actions)
    out_b = loaded.imagine(frames, actions)
    for a, b in zip(out_a, out_b, strict=True):
        assert torch.equal(a, b)
    assert json.loads((tmp_path / "config.json").read_text())["info"] == {"note": "test"}


def test_bad_checkpoints_are_refused(tmp_path):
    model = WorldModel(toy_config())
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "missing")
    save_model(tmp_path, model)
    torch.save(model.state_dict(), tmp_path / "model.safetensors")  # a pickle under the safetensors name
    with pytest.raises(CheckpointError, match="pickle"):
        load(tmp_path)
    save_model(tmp_path, model)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="truncated"):
        load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a dreamworld world-model config"):
        load(tmp_path)
    other = WorldModel(toy_config(context=4))
    other_cfg = toy_config()
    other_cfg.dynamics.d_model = 32
    save_model(tmp_path, WorldModel(other_cfg))
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "model.safetensors").read_bytes())
    save_model(tmp_path / "b", other)
    (tmp_path / "b" / "config.json").write_bytes((tmp_path / "config.json").read_bytes())
    with pytest.raises(CheckpointError, match="does not match its config"):
        load(tmp_path / "b")
    assert read_safetensors(tmp_path / "model.safetensors")  # the valid file still reads


def test_bfloat16_autocast_trains_like_float32():
    """Under bfloat16 autocast the dynamics loss and its gradients stay close to float32 (the rotary step keeps
    queries and keys in the autocast dtype, so attention sees one dtype), and precision names are checked."""
    from dreamworld.model.precision import resolve

    torch.manual_seed(5)
    model = WorldModel(toy_config(context=3, frame_termination=False))
    tokens, actions = _inputs(model, B=2, T=5)
    batch = {"tokens": tokens, "actions": model.actions_tensor(actions[:, :-1]), "rewards": torch.zeros(2, 4),
             "ends": torch.zeros(2, 4, dtype=torch.bool), "mask": torch.ones(2, 4, dtype=torch.bool)}
    losses, grads = dynamics_loss_and_grads(model, batch, "cpu")
    assert abs(losses["bfloat16"] - losses["float32"]) < 0.02 * losses["float32"], losses
    cosine = torch.nn.functional.cosine_similarity(grads["bfloat16"], grads["float32"], dim=0)
    assert cosine > 0.99, cosine
    assert resolve("float32", "cpu") == "float32" and resolve("auto", "cpu") in ("float32", "bfloat16")
    with pytest.raises(ValueError, match="auto, float32, bfloat16"):
        resolve("fp8", "cpu")
