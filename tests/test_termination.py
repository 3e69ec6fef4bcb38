"""The termination model: dreams read terminations off the frames they draw (rewards off the dynamics' head, or off
the frames too with a reward head), its sampler over-represents endings (and rewards) without crossing episodes,
and checkpoints from before it load with the dynamics' end head."""

import json

import numpy as np
import torch
from toy_models import toy_config

from dreamworld.checkpoint import load, save_model
from dreamworld.model.world_model import WorldModel
from dreamworld.train.termination import Augment, TransitionSampler, _steps_before


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
    outcomes = model.termination.outcomes
    model.termination.outcomes = lambda before, after: seen.append((before, after)) or outcomes(before, after)
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


def test_augmentation_moves_the_play_area_alike_in_both_frames_and_keeps_the_hud():
    g = torch.Generator().manual_seed(0)
    before = torch.randint(0, 256, (64, 20, 12, 3), dtype=torch.uint8, generator=g)
    after = before.roll(1, 2)  # something moved one column
    moved_before, moved_after = Augment(hud_rows=4, shift=3, flip=True)(before, after, g)
    assert torch.equal(moved_before[:, :4], before[:, :4]) and torch.equal(moved_after[:, :4], after[:, :4])
    assert torch.equal(moved_after[:, 4:], moved_before[:, 4:].roll(1, 2))  # the same move for both frames
    moves = []
    for i in range(64):  # each row is its play area moved and maybe flipped: find which
        area = before[i, 4:]  # (16, 12, 3)
        moves.append({(flip, dy, dx) for flip in (False, True) for dy in range(-3, 4) for dx in range(-2, 3)
                      if torch.equal(moved_before[i, 4:], (area.flip(0) if flip else area).roll((dy, dx), (0, 1)))})
    assert all(len(found) == 1 for found in moves)  # every row is one such move
    assert len(set.union(*moves)) > 20  # and the moves vary: flips, rows, columns
    assert {flip for flip, _, _ in set.union(*moves)} == {False, True}


def test_the_steps_before_an_ending_stay_inside_its_episode():
    # episode A: frames 0..3 (3 steps, the last one ends it); episode B: frames 4..9 (5 steps, the last ends it)
    ends = torch.zeros(10, dtype=torch.bool)
    ends[[2, 8]] = True
    valid = torch.ones(10, dtype=torch.bool)
    valid[[3, 9]] = False
    end_steps = torch.nonzero(valid & ends).squeeze(1)
    assert _steps_before(end_steps, valid & ~ends, near=8).tolist() == [1, 0, 7, 6, 5, 4]
    assert _steps_before(end_steps, valid & ~ends, near=2).tolist() == [1, 0, 7, 6]


def test_a_checkpoint_from_before_the_termination_model_loads_with_the_dynamics_end_head(tmp_path):
    torch.manual_seed(2)
    model = WorldModel(toy_config(frame_termination=False))
    save_model(tmp_path, model)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["config"]["termination"]  # as written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(config))
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


def _numbered_steps(n: int, side: int, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One episode of n frames (side x side), frame i filled with the value i so a batch row shows its step, ending
    at step `end`: frames (n, side, side, 3) uint8, ends (n,), valid (n,)."""
    frames = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, side, side, 3).contiguous()
    ends = torch.zeros(n, dtype=torch.bool)
    ends[end] = True
    valid = torch.ones(n, dtype=torch.bool)
    valid[-1] = False
    return frames, ends, valid


def test_real_share_shows_the_real_frames_of_the_same_steps():
    drawn, ends, valid = _numbered_steps(200, 4, end=99)
    real = drawn.clone()
    real[:, 0, 0, 0] = 255  # the real frames carry a mark in one pixel
    sampler = TransitionSampler(drawn, ends, valid, 0.1, torch.Generator().manual_seed(0), real=real,
                                real_share=0.5)
    batch = sampler.sample(2000, "cpu")
    marked = batch["before"][:, 0, 0, 0] == 1.0  # (B,)
    assert 0.45 < marked.float().mean() < 0.55
    assert torch.equal(marked, batch["after"][:, 0, 0, 0] == 1.0)  # both frames of a row are real, or neither
    torch.testing.assert_close(batch["after"][:, 0, 1, 1] * 255, batch["before"][:, 0, 1, 1] * 255 + 1)
    torch.testing.assert_close(batch["ends"], (batch["before"][:, 0, 1, 1] * 255).round().eq(99).float())


def _model_with_frame_rewards(seed=0):
    torch.manual_seed(seed)
    cfg = toy_config()
    cfg.termination.rewards = True
    model = WorldModel(cfg).eval()
    with torch.no_grad():
        model.tokenizer.decoder[-1].weight.normal_(std=0.3)  # untrained, it draws the canvas alone: make tokens show
    return model


def test_a_termination_model_with_a_reward_head_gives_the_dreams_their_rewards(tmp_path):
    model = _model_with_frame_rewards()
    actions = torch.tensor([0, 1, 2])
    for sign in (0, 2):  # the CNN's head made sure of one sign: every dream gets that reward, whatever the codes
        with torch.no_grad():
            model.termination.reward_head.bias.zero_()
            model.termination.reward_head.bias[sign] = 50.0
        state = _dream(model)
        rewards, _ = model.advance(state, model.dynamics.sample(model.predict(state, actions), 0.0))
        torch.testing.assert_close(rewards, model.reward_values[sign].expand(3))
    before, after = torch.rand(2, 5, 3, 64, 64).unbind(0)
    with torch.no_grad():
        _, logits = model.termination.outcomes(before, after)
        model.termination.correct_reward_prior([0.0, 0.3, -2.5])
        corrected = model.termination.outcomes(before, after)[1]
    torch.testing.assert_close(corrected, logits + torch.tensor([0.0, 0.3, -2.5]))
    save_model(tmp_path, model)
    loaded = load(tmp_path)
    assert loaded.cfg.termination.rewards and loaded.cfg.termination.reward_prior_shift == [0.0, 0.3, -2.5]
    torch.testing.assert_close(loaded.termination.reward_head.bias, model.termination.reward_head.bias)
    assert WorldModel(toy_config()).termination.reward_head is None  # the default (and every older CNN) has none


def test_reward_rows_come_from_rewarded_steps_with_their_sign_and_the_loss_learns_them():
    from dreamworld.train.termination import termination_loss

    drawn, ends, valid = _numbered_steps(200, 64, end=150)
    rewards = torch.zeros(200)
    rewards[[20, 60]], rewards[120] = 1.0, -1.0
    sampler = TransitionSampler(drawn, ends, valid, 0.1, torch.Generator().manual_seed(0), rewards=rewards,
                                reward_share=0.3)
    batch = sampler.sample(4000, "cpu")
    step = (batch["before"][:, 0, 0, 0] * 255).round().long()  # (B,) which step each row shows
    torch.testing.assert_close(batch["reward_signs"], torch.sign(rewards[step]).long() + 1)
    assert 0.27 < (batch["reward_signs"] != 1).float().mean() < 0.34  # reward_share, plus the uniform draws' few
    share = torch.cat([sampler.sample(4096, "cpu")["ends"] for _ in range(25)]).mean().item()
    rate = 1 / 199
    expected = np.log(share / (1 - share)) - np.log(rate / (1 - rate))
    assert abs(sampler.prior_shift() - expected) < 0.1  # the reward rows thin the uniform draws: still measured
    signs = torch.cat([sampler.sample(4096, "cpu")["reward_signs"] for _ in range(25)])  # ~100k rows
    in_batches = torch.bincount(signs, minlength=3).double() / len(signs)
    in_data = torch.bincount(torch.sign(rewards[:-1]).long() + 1, minlength=3).double() / 199
    torch.testing.assert_close(torch.tensor(sampler.reward_prior_shift(), dtype=torch.double),
                               in_data.log() - in_batches.log(), atol=0.1, rtol=0)
    model = _model_with_frame_rewards()
    net = model.termination.train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batch = sampler.sample(64, "cpu")
    _, first = termination_loss(net, batch)
    assert {"reward_loss", "reward_accuracy"} <= set(first)
    for _ in range(40):
        loss, stats = termination_loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert stats["reward_loss"] < 0.5 * first["reward_loss"], (first, stats)
