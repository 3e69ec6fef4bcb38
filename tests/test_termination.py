"""The termination model: dreams read terminations off the frames they draw (rewards off the dynamics' head), its
sampler over-represents endings without crossing episodes, and a model without it reads endings with the dynamics'
end head."""

import json

import numpy as np
import torch
from toy_models import toy_config

from dreamworld.checkpoint import load, save_model
from dreamworld.model.world_model import WorldModel
from dreamworld.train.termination import TransitionSampler, _steps_before


def _dream(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (3, model.cfg.dynamics.context_frames, 64, 64, 3), dtype=torch.uint8, generator=g)
    actions = torch.randint(0, 3, (3, model.cfg.dynamics.context_frames - 1), generator=g)
    return model.start(frames, actions)


def test_dreams_read_terminations_off_the_drawn_frames():
    torch.manual_seed(0)
    model = WorldModel(toy_config()).eval()
    assert model.dynamics.end_head is None
    with torch.no_grad():
        model.tokenizer.decoder[-1].weight.normal_(std=0.3)  # untrained, it draws the canvas alone: make tokens show
        model.termination.end_head.bias.fill_(0.05)
    state = _dream(model)
    actions = torch.tensor([0, 1, 2])
    before = model.tokenizer.decode(state.tokens)
    next_tokens = model.dynamics.sample(model.predict(state, actions), 0.0)
    hidden = state.hidden
    rewards, ends = model.advance(state, next_tokens)
    reward_logits, _ = model.dynamics.outcomes(hidden, next_tokens)
    torch.testing.assert_close(rewards, model.reward_values[reward_logits.argmax(-1)])
    torch.testing.assert_close(ends, model.termination(before, model.tokenizer.decode(next_tokens)) > 0)
    np.testing.assert_array_equal(model.frames(state).numpy(), model.tokenizer.decode_uint8(next_tokens).numpy())
    # a dream restarting changes its tokens in place: the next step reads the new frame, not a stale drawing
    seen = []
    forward = model.termination.forward
    model.termination.forward = lambda before, after: seen.append((before, after)) or forward(before, after)
    stale = model.tokenizer.decode(state.tokens)
    state.tokens[1] = torch.roll(state.tokens[1], 1)
    restarted = state.tokens.clone()
    model.advance(state, model.dynamics.sample(model.predict(state, actions), 0.0))
    torch.testing.assert_close(seen[0][0], model.tokenizer.decode(restarted))
    assert not torch.allclose(seen[0][0][1], stale[1])


def test_transition_sampler_draws_endings_and_stays_inside_episodes():
    # two episodes of 50 steps (51 frames each); frame i is filled with the value i so pairs can be checked
    n = 102
    frames = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 64, 64, 3).contiguous()
    ends = torch.zeros(n, dtype=torch.bool)
    ends[49] = True  # episode 1 ends on its last step; episode 2 is cut off (truncated)
    valid = torch.ones(n, dtype=torch.bool)
    valid[[50, 101]] = False  # the last frame of each episode has no step after it
    sampler = TransitionSampler(frames, ends, valid, end_share=0.25, generator=torch.Generator().manual_seed(0))
    batch = sampler.sample(4000, "cpu")
    before, after = batch["before"][:, 0, 0, 0] * 255, batch["after"][:, 0, 0, 0] * 255
    torch.testing.assert_close(after, before + 1)  # the frame after the step, never across an episode boundary
    assert not torch.isin(before.round().long(), torch.tensor([50, 101])).any()
    assert 0.2 < batch["ends"].mean() < 0.3
    near = (before >= 41) & (before <= 48)  # the 8 steps before the ending: danger on screen, no ending yet
    assert 0.25 < near.float().mean() < 0.35  # end_share of the batch, plus their share of the uniform draws


def test_the_steps_before_an_ending_stay_inside_its_episode():
    # episode A: frames 0..3 (3 steps, the last one ends it); episode B: frames 4..9 (5 steps, the last ends it)
    ends = torch.zeros(10, dtype=torch.bool)
    ends[[2, 8]] = True
    valid = torch.ones(10, dtype=torch.bool)
    valid[[3, 9]] = False
    end_steps = torch.nonzero(valid & ends).squeeze(1)
    assert _steps_before(end_steps, valid & ~ends, near=8).tolist() == [1, 0, 7, 6, 5, 4]
    assert _steps_before(end_steps, valid & ~ends, near=2).tolist() == [1, 0, 7, 6]


def test_a_model_without_the_cnn_saves_loads_and_dreams_with_the_dynamics_end_head(tmp_path):
    torch.manual_seed(2)
    model = WorldModel(toy_config(frame_termination=False))
    save_model(tmp_path, model)
    assert json.loads((tmp_path / "config.json").read_text())["config"]["termination"] is None
    loaded = load(tmp_path)
    assert loaded.termination is None and loaded.dynamics.end_head is not None
    state = _dream(loaded)
    digit_logits = loaded.predict(state, torch.tensor([0, 1, 2]))
    rewards, ends = loaded.advance(state, loaded.dynamics.sample(digit_logits, 0.0))
    assert rewards.shape == ends.shape == (3,)


def _sampler_over(ends_at: list[int], frames: int = 1000, **kwargs) -> TransitionSampler:
    ends = torch.zeros(frames, dtype=torch.bool)
    ends[ends_at] = True
    valid = torch.ones(frames, dtype=torch.bool)
    valid[-1] = False
    drawn = torch.zeros(frames, 4, 4, 3, dtype=torch.uint8)
    return TransitionSampler(drawn, ends, valid, generator=torch.Generator().manual_seed(0), **kwargs)


def test_the_prior_shift_is_how_much_the_batches_overstate_the_odds_of_an_ending():
    sampler = _sampler_over(list(range(50, 1000, 100)), end_share=0.2)  # 10 endings in 999 steps
    share = torch.cat([sampler.sample(4096, "cpu")["ends"] for _ in range(25)]).mean().item()  # ~100k rows
    rate = 10 / 999
    expected = np.log(share / (1 - share)) - np.log(rate / (1 - rate))
    assert abs(sampler.prior_shift() - expected) < 0.05  # measured on the batches, not only by the formula
    assert sampler.prior_shift() > 3  # 0.2 + 0.6 * 1% of the rows end, against 1% of the steps
    assert _sampler_over([], end_share=0.2).prior_shift() == 0.0  # no endings: nothing to correct


def test_correcting_the_prior_lowers_every_logit_by_the_shift_and_is_recorded(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(toy_config()).eval()
    before, after = torch.rand(2, 5, 3, 64, 64).unbind(0)
    with torch.no_grad():
        logits = model.termination(before, after)
        model.termination.correct_prior(2.5)
        torch.testing.assert_close(model.termination(before, after), logits - 2.5)
    save_model(tmp_path, model)
    loaded = load(tmp_path)
    assert loaded.cfg.termination.prior_shift == 2.5  # in config.json: a second correction can be refused
    torch.testing.assert_close(loaded.termination(before, after), logits - 2.5)
