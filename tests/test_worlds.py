"""Shipped worlds: float16 and int8 weights load back as float32, export_world writes a small world with its agent,
play opens the default world and its agent, and names that are not shipped get a clear error."""

import json
import shutil
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_play import make_run

from dreamworld import worlds
from dreamworld.agents import ActorCritic, NetworkConfig, Policy
from dreamworld.agents import load as load_agent
from dreamworld.checkpoint import WEIGHTS, compact_state, expand_state, load
from dreamworld.cli.play import PlayArgs, build_app
from dreamworld.io import read_safetensors, write_safetensors
from dreamworld.play import PlayOptions


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "catch")


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """An empty folder of shipped worlds."""
    monkeypatch.setattr(worlds, "ROOT", tmp_path / "worlds")
    return tmp_path / "worlds"


def _agent(path, model):
    obs_space = gym.spaces.Box(-1.0, 1.0, (model.tokenizer.tokens_per_frame, len(model.cfg.tokenizer.levels)),
                               np.float32)
    net = ActorCritic(obs_space, model.action_space, NetworkConfig(hidden=16, channels=[4, 8]))
    return Policy(net, "latent", model.cfg.env_id, checkpoint="/somewhere/else").save(path)


def test_float16_weights_load_as_float32(run, tmp_path):
    original, run = load(run), shutil.copytree(run, tmp_path / "copy")
    write_safetensors(run / WEIGHTS, compact_state(read_safetensors(run / WEIGHTS), "float16"))
    assert all(t.dtype == torch.float16 for t in read_safetensors(run / WEIGHTS).values())
    model = load(run)
    for name, t in model.state_dict().items():
        assert t.dtype == original.state_dict()[name].dtype == torch.float32
        torch.testing.assert_close(t, original.state_dict()[name], rtol=1e-3, atol=1e-4)


def test_int8_rows_round_trip():
    state = {"w": torch.randn(64, 32, 3, 3), "b": torch.randn(64), "zero": torch.zeros(128, 64),
             "steps": torch.arange(5)}
    packed = compact_state(state, "int8")
    assert packed["w"].dtype == torch.int8 and packed["b"].dtype == torch.float16
    assert packed["steps"].dtype == torch.int64
    back = expand_state(packed, state)
    assert set(back) == set(state) and back["w"].dtype == torch.float32
    row_max = state["w"].flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    assert ((back["w"] - state["w"]).abs() <= row_max / 254 + 1e-3).all()  # half a quantization step per row
    assert torch.equal(back["zero"], state["zero"]) and torch.equal(back["steps"], state["steps"])
    with pytest.raises(ValueError, match="float32, float16, int8"):
        compact_state(state, "bfloat8")


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_export_world_with_its_agent(run, tmp_path, shipped, dtype):
    model = load(run)
    _agent(tmp_path / "agent", model)
    out = worlds.export_world(run, shipped / "catch", dtype=dtype, agent=tmp_path / "agent", starts=1)
    assert worlds.available() == ["catch"] and worlds.path("catch") == out
    config = json.loads((out / "config.json").read_text())
    assert config["info"]["weights"] == dtype and config["info"]["world"] == "catch"
    assert read_safetensors(out / "starts.safetensors")["frames"].shape[0] == 1
    exported = load(out)
    for name, t in exported.state_dict().items():
        assert t.dtype == torch.float32
        tolerance = 2e-2 if dtype == "int8" else 1e-3
        assert (t - model.state_dict()[name]).abs().max() <= tolerance * (model.state_dict()[name].abs().max() + 1e-3)
    agent = load_agent(worlds.agent_path(out))
    assert agent.obs_type == "latent" and agent.config["checkpoint"] is None
    assert all(t.dtype == torch.float16 for t in read_safetensors(out / "agent" / "model.safetensors").values())
    full = worlds.size_bytes(run) + worlds.size_bytes(tmp_path / "agent")
    assert worlds.size_bytes(out) < full


def test_play_opens_the_default_world_and_its_agent(run, tmp_path, shipped):
    with pytest.raises(FileNotFoundError, match="no shipped world 'bricks'.*none shipped"):
        worlds.path()
    _agent(tmp_path / "agent", load(run))
    worlds.export_world(run, shipped / worlds.DEFAULT, agent=tmp_path / "agent")
    app = build_app(PlayArgs(window=PlayOptions(script="right*2", fps=0, scale=2)))
    assert app.agent is not None and app.agent.obs_type == "latent"
    assert "catch" not in worlds.available()
    with pytest.raises(FileNotFoundError, match="available: bricks"):
        worlds.path("catch")
    assert build_app(PlayArgs(checkpoint=str(run), window=PlayOptions(script="wait"))).agent is None


def test_make_worlds_quick_makes_a_world_that_loads_plays_and_reports(tmp_path, monkeypatch):
    """scripts/make_worlds.py trains with `dreamworld train`'s defaults and nothing per game; --quick runs every stage
    on toy budgets: a float16 world under
    the size cap with its object-observation agent, `dreamworld evaluate`'s report (object recall, closed loop) in
    its metrics.json, a play screenshot; run again, it reuses what it made."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("make_worlds", Path(__file__).parents[1] / "scripts/make_worlds.py")
    make_worlds = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_worlds", make_worlds)  # its dataclasses look their module up
    spec.loader.exec_module(make_worlds)
    from dreamworld.train.config import TrainConfig

    for game in ("Bricks", "Cave", "Catch"):  # one recipe: the default command with the budget of the bar
        assert make_worlds._train_config(make_worlds.MakeWorldsArgs(games=(game,))) == TrainConfig(minutes=15.0)
    args = make_worlds.MakeWorldsArgs(games=("Catch",), work=str(tmp_path / "work"), out=str(tmp_path / "worlds"),
                                      docs=str(tmp_path / "docs"), wandb="disabled", threads=2, quick=True)
    threads = torch.get_num_threads()
    make_worlds.main(args)
    assert torch.get_num_threads() == 2  # play's one thread does not carry over to the next game's training
    torch.set_num_threads(threads)
    world = tmp_path / "worlds" / "catch"
    assert sorted(p.name for p in world.iterdir()) == ["agent", "config.json", "metrics.json", "model.safetensors",
                                                      "starts.safetensors"]
    metrics = json.loads((world / "metrics.json").read_text())
    assert metrics["weights"] == "float16" and metrics["size_bytes"] <= worlds.MAX_BYTES
    assert set(metrics["object_recall"]) >= {"1", "16"} and len(metrics["closed_loop"]["policies"]) == 4
    assert metrics["agent"]["obs_type"] == "objects" and metrics["play"]["frames"] == 8
    assert load(world).cfg.env_id == "dreamworld/Catch-v0" and load_agent(world / "agent").obs_type == "objects"
    assert (tmp_path / "docs" / "catch.gif").stat().st_size > 0 and (tmp_path / "docs" / "catch_play.png").is_file()
    trained = (tmp_path / "work" / "catch" / "world_model" / "model.safetensors").stat().st_mtime_ns
    make_worlds.main(args)  # again: the world model and the agent are reused
    assert (tmp_path / "work" / "catch" / "world_model" / "model.safetensors").stat().st_mtime_ns == trained

