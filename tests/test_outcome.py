"""The outcome phase: states of the frozen dynamics, event-rich batches, and a loss that trains only the heads."""

import copy
from dataclasses import replace

import pytest
import torch
from toy_models import toy_config

from dreamworld.envs import EpisodeDataset, collect, space_to_json
from dreamworld.model.world_model import WorldModel
from dreamworld.train.config import DynamicsPhase, OutcomePhase, TokenizerPhase, TrainConfig
from dreamworld.train.data import load_steps
from dreamworld.train.outcome import OutcomeStates, outcome_heads, outcome_loss
from dreamworld.train.trainer import encode_frames, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A random toy world model, 900 steps of Catch in memory and their tokens."""
    data = tmp_path_factory.mktemp("data") / "catch"
    collect("Catch", data, 900, policy="scripted", seed=0, num_envs=3, progress=False)
    ds = EpisodeDataset(data)
    torch.manual_seed(0)
    cfg = toy_config(context=3, frame_termination=False)
    cfg.action_space = space_to_json(ds.action_space)
    model = WorldModel(cfg).eval()
    steps = load_steps(ds, list(range(len(ds))), progress=False)
    return model, steps, encode_frames(model, steps.frames, progress=False), data


def _pool(toy, **kwargs):
    model, steps, tokens, _ = toy
    return OutcomeStates(model, steps, tokens, 0.25, torch.Generator().manual_seed(0), progress=False, **kwargs)


def test_states_are_the_dynamics_states_of_every_step(toy):
    model, steps, tokens, _ = toy
    pool = _pool(toy)
    assert len(pool.states) == int(steps.valid.sum())
    with torch.no_grad():
        first = model.dynamics.hidden(tokens[None, :6], steps.actions[None, :6])[0]  # the first chunk: 2 x 3 frames
    torch.testing.assert_close(pool.states[:6].float(), first, atol=0.02, rtol=0.02)  # stored as bfloat16
    torch.testing.assert_close(pool.next_tokens[:6], tokens[1:7])
    assert int((pool.rewards != 0).sum()) == int((steps.rewards != 0).sum()) > 0
    assert int(pool.ends.sum()) == int(steps.ends.sum())


def test_a_full_pool_gives_events_half_the_room_and_batches_keep_their_share(toy):
    model, steps, tokens, _ = toy
    per_state = 2 * model.tokenizer.tokens_per_frame * model.cfg.dynamics.d_model
    events = int(((steps.rewards != 0) | steps.ends).sum())
    pool = _pool(toy, max_bytes=events * per_state)  # room for as many states as there are events
    assert len(pool.states) == events and len(pool.events) == events // 2
    batch = pool.sample(4000, "cpu")
    assert 0.22 < ((batch["rewards"] != 0) | (batch["ends"] > 0)).float().mean().item() < 0.28


def test_batches_draw_their_share_from_events(toy):
    pool = _pool(toy)
    assert len(pool.events) / len(pool.states) < 0.1  # events are rare in the data
    batch = pool.sample(4000, "cpu")
    assert 0.22 < ((batch["rewards"] != 0) | (batch["ends"] > 0)).float().mean().item() < 0.28
    assert batch["states"].dtype == torch.float32 and batch["states"].shape[1:] == pool.states.shape[1:]


def test_the_loss_trains_the_heads_and_leaves_the_transformer(toy):
    model = toy[0]
    pool = _pool(toy)
    trunk = {k: v.clone() for k, v in model.dynamics.state_dict().items() if not k.startswith(("outcome", "reward_head",
                                                                                                  "end_head"))}
    model.dynamics.requires_grad_(False)  # as train() does: the optimiser below holds every dynamics weight
    outcome_heads(model).requires_grad_(True)
    opt = torch.optim.AdamW(model.dynamics.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss, metrics = outcome_loss(model, pool.sample(128, "cpu"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss"])
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, losses[::15]
    for k, v in trunk.items():
        assert torch.equal(model.dynamics.state_dict()[k], v), k


def test_a_share_of_zero_skips_the_phase_and_bad_shares_are_refused(toy, tmp_path):
    model, _, _, data = toy
    fast = {"dynamics": DynamicsPhase(batch_size=2), "warmup_steps": 2, "holdout": 0.0}
    tokenizer = TokenizerPhase(batch_size=4, canvas_frames=0)
    summary = train(str(data), str(tmp_path / "run"), copy.deepcopy(model.cfg),
                    TrainConfig(steps=10, tokenizer=tokenizer, outcome=OutcomePhase(share=0.0), **fast),
                    wandb="disabled")
    assert "outcome" not in summary and "dynamics" in summary
    assert torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)["phase"] == "done"
    with pytest.raises(ValueError, match="leave the dynamics no time"):
        train(str(data), str(tmp_path / "bad"), copy.deepcopy(model.cfg),
              TrainConfig(steps=10, tokenizer=replace(tokenizer, share=0.6), outcome=OutcomePhase(share=0.5), **fast),
              wandb="disabled")
