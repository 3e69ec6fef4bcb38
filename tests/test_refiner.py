"""The refiner: a convex mix of the previous drawing and the fresh one, that learns to carry a texture over as the
actions scroll it; its chains of training runs; dreams that draw each frame over the last; training with one end to
end."""

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from toy_models import toy_config

from dreamworld.checkpoint import load, save_model
from dreamworld.envs import EpisodeDataset, collect, space_to_json
from dreamworld.model import world_model
from dreamworld.model.refiner import Refiner, RefinerConfig, ShiftedMix
from dreamworld.model.tokenizer import pixels, psnr
from dreamworld.model.world_model import WorldModel, WorldModelConfig
from dreamworld.train.config import TrainConfig
from dreamworld.train.phases import check_shares, load_optimizer_state
from dreamworld.train.refiner import ChainSampler, refiner_loss
from dreamworld.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_shifted_mix_and_its_gradients_are_the_neighbourhood_sum_autograd_would_give():
    torch.manual_seed(0)
    padded = torch.rand(2, 3, 9, 10, dtype=torch.double, requires_grad=True)  # reach 2 around a 5 x 6 frame
    weights = torch.rand(2, 25, 5, 6, dtype=torch.double, requires_grad=True)
    taps = [padded[:, :, dy : dy + 5, dx : dx + 6] * weights[:, 5 * dy + dx : 5 * dy + dx + 1]
            for dy in range(5) for dx in range(5)]
    assert torch.allclose(ShiftedMix.apply(padded, weights), sum(taps))
    assert torch.autograd.gradcheck(ShiftedMix.apply, (padded, weights))


def test_the_output_mixes_the_inputs_pixels():
    refiner = Refiner(RefinerConfig(width=8), gym.spaces.Discrete(3))
    flat = torch.full((2, 3, 16, 16), 0.3)
    actions = torch.tensor([0, 2])
    assert torch.allclose(refiner(flat, flat, actions), flat)  # a mix of equal values is that value
    out = refiner(torch.zeros(2, 3, 16, 16), torch.ones(2, 3, 16, 16), actions)  # untrained: mostly the fresh one
    fresh_weight = np.exp(4.0) / (np.exp(4.0) + refiner.taps)
    assert torch.allclose(out, torch.full_like(out, fresh_weight), atol=1e-6)
    with torch.no_grad():
        refiner.weights[-1].bias.normal_(0, 3)
        refiner.weights[-1].weight.normal_(0, 1)
        refiner.action.embed.weight.normal_(0, 1)
    previous, fresh = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    out = refiner(previous, fresh, actions)
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, refiner(previous, fresh, torch.tensor([1, 1])))  # the action is read
    with pytest.raises(ValueError, match="pass `actions`"):
        refiner(previous, fresh)


def _scrolling_episodes(episodes: int, length: int, size: int = 16, seed: int = 0):
    """Episodes of a random texture (random specks in each column) that each step's action scrolls one pixel left
    (0) or right (1), and a blurred drawing of each frame standing in for the tokenizer's: frames, fresh uint8
    (F, size, size, 3), the action taken at each frame (F,) and each frame's episode start (F,)."""
    rng = np.random.default_rng(seed)
    frames, actions, starts = [], [], []
    for e in range(episodes):
        texture = (rng.random((size, size + 2 * length, 1)) < 0.3) * np.array([200, 120, 60]) + 30  # (H, W + 2L, 3)
        steps, x = rng.integers(0, 2, length), length
        for t in range(length):
            frames.append(texture[:, x : x + size])
            x += 1 if steps[t] == 0 else -1
        actions += list(steps)
        starts += [e * length] * length
    frames = torch.from_numpy(np.stack(frames).astype(np.uint8))  # (F, H, W, 3)
    blurred = F.avg_pool2d(pixels(frames), 3, 1, 1)  # (F, 3, H, W)
    fresh = (blurred * 255).round().to(torch.uint8).permute(0, 2, 3, 1)  # (F, H, W, 3)
    return frames, fresh, torch.tensor(actions), torch.tensor(starts)


def _train_on_scrolling(actions: bool) -> tuple[Refiner, list[float]]:
    torch.manual_seed(0)
    frames, fresh, steps, starts = _scrolling_episodes(12, 40)
    sampler = ChainSampler(frames, fresh, steps, starts, run=3, runs=8, chains=4,
                           generator=torch.Generator().manual_seed(0))
    refiner = Refiner(RefinerConfig(width=16, layers=2, actions=actions), gym.spaces.Discrete(2))
    opt = torch.optim.Adam(refiner.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss, _, last = refiner_loss(refiner, sampler.sample("cpu"))
        sampler.update(last)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return refiner, losses


def test_the_refiner_learns_to_carry_a_texture_over_as_the_actions_move_it():
    held, held_fresh, held_actions, _ = _scrolling_episodes(1, 30, seed=1)
    scores = {}
    for actions in (True, False):
        refiner, losses = _train_on_scrolling(actions)
        with torch.no_grad():  # each frame over the real one before it, after the action taken there
            drawn = refiner(pixels(held[:-1]), pixels(held_fresh[1:]), held_actions[:-1] if actions else None)
        scores[actions] = psnr((drawn * 255).round().to(torch.uint8).permute(0, 2, 3, 1), held[1:])
        if actions:
            assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert scores[True] > psnr(held_fresh[1:], held[1:]) + 6  # measured 23.0 against 12.5
    # without the action it must read the direction off the blurred drawing, which it learns far later (14.1)
    assert scores[True] > scores[False] + 3


def test_chains_continue_within_their_episode_over_the_drawings_they_are_given():
    frames = torch.arange(50, dtype=torch.uint8)[:, None, None, None].expand(50, 4, 4, 3).clone()  # frame i is i
    starts = torch.tensor([0] * 10 + [10] * 40)  # episodes of 10 and 40 frames
    sampler = ChainSampler(frames, frames, torch.arange(50) + 100, starts, run=3, runs=5, chains=2,
                           generator=torch.Generator().manual_seed(1), noise=0.0, restart=0.0)
    for _ in range(20):
        batch = sampler.sample("cpu")
        index = (batch["real"][:, :, 0, 0, 0] * 255).round().long()  # (runs, run + 1) frame numbers
        assert (index[:, 1:] - index[:, :-1] == 1).all()
        assert torch.equal(batch["actions"], index[:, :-1] + 100)  # the actions that led to frames 1..run
        assert (starts[index[:, 0]] == starts[index[:, -1]]).all()  # the frame before and the run: one episode
        marker = torch.rand(5, 3, 4, 4)
        following = sampler.chain_at + 3
        sampler.update(marker)
        goes_on = sampler.chain_at == following
        assert torch.equal(sampler.chain_drawn[goes_on], marker[:2][goes_on])  # drawn over its own drawing
        real_before = pixels(frames[sampler.chain_at[~goes_on] - 1])
        assert torch.equal(sampler.chain_drawn[~goes_on], real_before)  # a new chain starts over a real frame
    with pytest.raises(ValueError, match="longer episodes"):
        ChainSampler(frames[:3], frames[:3], torch.zeros(3), torch.zeros(3, dtype=torch.long), 3, 4, 2,
                     torch.Generator())


def _refiner_model() -> WorldModel:
    cfg = toy_config()
    cfg.refiner = RefinerConfig(width=8, layers=2)
    torch.manual_seed(0)
    model = WorldModel(cfg).eval()
    with torch.no_grad():
        model.refiner.weights[-1].weight.normal_(0, 0.3)  # an untrained refiner would copy too little to see
        model.refiner.action.embed.weight.normal_(0, 1)
    return model


def test_dreams_draw_each_frame_over_the_one_before(tmp_path):
    model = _refiner_model()
    frames = torch.randint(0, 256, (3, 4, 64, 64, 3), dtype=torch.uint8)
    actions = torch.randint(0, 3, (3, 3))
    state = model.start(frames, actions)
    assert torch.equal(model.frames(state), frames[:, -1])  # the first frame is the real one
    before = model.drawn(state).clone()
    shown, _, _ = model.step(state, torch.tensor([0, 1, 2]))
    assert torch.equal(shown, model.tokenizer.to_uint8(model.draw(state.tokens, before, torch.tensor([0, 1, 2]))))
    assert not torch.equal(shown, model.tokenizer.to_uint8(model.draw(state.tokens, before, torch.tensor([2, 0, 1]))))
    assert not torch.equal(shown, model.tokenizer.decode_uint8(state.tokens))  # not the tokens alone
    kept = model.drawn(state)[[0, 2]].clone()
    model.replace_rows(state, torch.tensor([1]), model.start(frames[1:2], actions[1:2]))
    assert torch.equal(model.frames(state)[1], frames[1, -1]) and torch.equal(model.drawn(state)[[0, 2]], kept)
    save_model(tmp_path, model)
    loaded = load(tmp_path)
    assert loaded.cfg.refiner == model.cfg.refiner
    all_actions = torch.randint(0, 3, (3, 8))
    for a, b in zip(model.imagine(frames, all_actions), loaded.imagine(frames, all_actions), strict=True):
        assert torch.equal(a, b)


def test_the_cpu_draws_in_chunks_and_gets_what_one_batch_gets(monkeypatch):
    model = _refiner_model()
    fresh, previous = torch.rand(7, 3, 64, 64), torch.rand(7, 3, 64, 64)
    actions = torch.randint(0, 3, (7,))
    with torch.no_grad():
        whole = model.refiner(previous, fresh, actions)  # (7, 3, H, W) in one batch
    monkeypatch.setattr(world_model, "REFINE_CHUNK_CPU", 3)  # chunks of 3, 3 and 1 frames
    assert torch.allclose(model._refine(previous, fresh, actions), whole, atol=1e-6)


def test_training_with_a_refiner_end_to_end(tmp_path):
    data = tmp_path / "cave"
    collect("Cave", data, 900, policy="mixed", seed=0, num_envs=3, progress=False)
    cfg = toy_config(context=3)
    cfg.refiner = RefinerConfig(width=8, layers=2)
    cfg.action_space = space_to_json(EpisodeDataset(data).action_space)
    summary = train(str(data), str(tmp_path / "run"), cfg,
                    TrainConfig(steps=120, refiner_share=0.3, tokenizer_batch_size=8, batch_size=8, log_every=5,
                                warmup_steps=5, holdout=0.34, eval_samples=4,
                                refiner_logits_lr_scale=1.0), wandb="disabled")  # 36 steps: logits at full rate
    assert summary["refiner"]["steps"] == 36
    assert summary["refiner"]["final_loss"] < summary["refiner"]["first_loss"]
    metrics = summary["eval"]  # measured: reconstruction 20.4 dB, whole episodes drawn in a chain 14.9 dB
    assert metrics["reconstruction_psnr"] > 17.5  # Cave's mean frame scores 17.3 dB, a gray frame 8.5
    assert 12 < metrics["chain_reconstruction_psnr"] <= metrics["reconstruction_psnr"] + 0.5  # errors add up
    assert load(tmp_path / "run").refiner is not None


def test_the_refiners_logits_learn_at_their_share_of_the_learning_rate(tmp_path):
    """At the full rate the softmax over the mixing weights saturated early and could stick on the fresh drawing
    (TrainConfig.refiner_logits_lr_scale)."""
    data = tmp_path / "cave"
    collect("Cave", data, 300, policy="random", seed=0, num_envs=2, progress=False)
    moved = {}
    for scale in (1.0, 0.05):
        cfg = toy_config(context=3)
        cfg.refiner = RefinerConfig(width=8, layers=2)
        cfg.action_space = space_to_json(EpisodeDataset(data).action_space)
        run = tmp_path / f"run{scale}"
        train(str(data), str(run), cfg, TrainConfig(
            steps=40, tokenizer_share=0.2, refiner_share=0.5, termination_share=0.05, outcome_share=0.0,
            refiner_logits_lr_scale=scale, tokenizer_batch_size=4, batch_size=4, warmup_steps=1, holdout=0.0,
            refiner_runs=2, refiner_chains=1), wandb="disabled")
        logits = load(run).refiner.weights[-1]
        untrained = Refiner(cfg.refiner, gym.spaces.Discrete(3)).weights[-1]
        moved[scale] = max((logits.weight - untrained.weight).abs().max(), (logits.bias - untrained.bias).abs().max())
    assert 0 < moved[0.05] < 0.2 * moved[1.0]


def test_a_refiner_phase_saved_in_one_parameter_group_resumes_in_two():
    """Runs saved mid-refiner before its logits had a group of their own resume with their Adam moments."""
    refiner = Refiner(RefinerConfig(width=8, layers=2), gym.spaces.Discrete(3))
    before = torch.optim.AdamW(refiner.parameters(), lr=1e-3)
    refiner(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), torch.tensor([0, 2])).square().mean().backward()
    before.step()
    after = torch.optim.AdamW(refiner.parameter_groups(0.1), lr=1e-3)
    load_optimizer_state(after, before.state_dict())
    assert [g["lr_scale"] for g in after.param_groups[1:]] == [0.1]
    for p in refiner.parameters():
        assert torch.equal(after.state[p]["exp_avg"], before.state[p]["exp_avg"])
    other = torch.optim.AdamW([{"params": list(refiner.parameters())[::-1]}, {"params": []}], lr=1e-3)
    with pytest.raises(ValueError, match="without --resume"):
        load_optimizer_state(other, before.state_dict())


def test_the_refiner_share_counts_only_for_a_model_with_a_refiner():
    cfg = TrainConfig(tokenizer_share=0.78, termination_share=0.07, outcome_share=0.08)  # + refiner 0.1 = 1.03
    check_shares(cfg, WorldModel(toy_config()))
    with pytest.raises(ValueError, match="--refiner-share"):
        check_shares(cfg, _refiner_model())


def test_a_refiner_saved_before_refiners_read_actions_loads_without_them():
    cfg = toy_config()
    cfg.refiner = RefinerConfig(width=8, layers=2)
    data = cfg.to_dict()
    del data["refiner"]["actions"]  # as config.json was written before the field
    loaded = WorldModelConfig.from_dict(data)
    assert loaded.refiner.actions is False and WorldModel(loaded).refiner.action is None
    assert WorldModel(cfg).refiner.action is not None  # new refiners read them


def test_a_refiner_whose_loss_rose_is_reported_as_stuck():
    from dreamworld.train.optional_phases import refiner_stuck

    warning = refiner_stuck({"first_loss": 0.0731, "final_loss": 0.0858})
    assert warning is not None and "0.0731 -> 0.0858" in warning and "--seed" in warning
    assert refiner_stuck({"first_loss": 0.0756, "final_loss": 0.0470}) is None
    assert refiner_stuck({"first_loss": None, "final_loss": float("nan")}) is None  # a phase that took no step
