"""Property-based tests of loading world models and agents (hypothesis): damaged safetensors files, damaged and
edited config.json, pickles under the expected names and symbolic links out of the directory give a clear error
naming the file, never a pickle executed, never a model other than the one saved.

One toy world model (with start contexts) and one toy agent are saved once per module; each example writes its
damaged copy into a fresh directory (the files it leaves alone hard-linked), so an example costs one load,
10-30 ms. 200 examples a property (1,000 with -m slow).
"""

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import strategies
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dream_env import make_run

from dreamworld import checkpoint as ckpt
from dreamworld.agents import ActorCritic, NetworkConfig, Policy
from dreamworld.agents import load as load_agent
from dreamworld.checkpoint import CONFIG, STARTS, TRAIN_STATE, WEIGHTS
from dreamworld.dream.vector_env import DreamVectorEnv
from dreamworld.io import CheckpointError, read_safetensors
from dreamworld.model.dynamics import DynamicsConfig

pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """A pickle that creates the file `marker` when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A toy world model with start contexts and a resume state, a toy agent, their states, and a scratch root."""
    root = tmp_path_factory.mktemp("saved")
    run = make_run(root / "run", dynamics=DynamicsConfig(d_model=32, n_layers=1, n_heads=2, context_frames=3,
                                                         sampler_stride=(1, 1)))
    ckpt.save_train_state(run, {"step": torch.tensor(3), "optimizer": {"lr": 0.1}})
    net = ActorCritic(gym.spaces.Box(-1, 1, (16, 3), np.float32), gym.spaces.Discrete(3),
                      NetworkConfig(hidden=16, token_width=8))
    agent = Policy(net, "latent", "Toy-v0").save(root / "agent")
    return {"run": run, "agent": agent, "scratch": root / "scratch",
            "model": {k: v.clone() for k, v in ckpt.load(run).state_dict().items()},
            "policy": {k: v.clone() for k, v in load_agent(agent).net.state_dict().items()}}


def _copy(src: Path, scratch: Path, replace: dict[str, bytes]) -> Path:
    """A fresh directory holding src's files: hard links, except `replace` {name: bytes} written anew."""
    scratch.mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=scratch))
    for file in src.iterdir():
        if file.is_file() and file.name not in replace:
            os.link(file, out / file.name)
    for name, data in replace.items():
        (out / name).write_bytes(data)
    return out


def _assert_names(error: CheckpointError, name: str) -> None:
    assert name in str(error), str(error)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_damaged_safetensors_are_refused_or_harmless(saved, examples):
    """A world model's model.safetensors or starts.safetensors truncated, bit-flipped, overwritten or grown: making
    a dream either raises a CheckpointError naming the file, or dreams from exactly the saved weights and starts
    (the bytes changed were none of theirs, e.g. metadata)."""

    @settings(max_examples=examples)
    @given(st.data(), st.sampled_from([WEIGHTS, STARTS]))
    def check(data, name):
        original = (saved["run"] / name).read_bytes()
        run = _copy(saved["run"], saved["scratch"], {name: data.draw(strategies.damaged(original))})
        try:
            envs = DreamVectorEnv(1, checkpoint=run, device="cpu")
        except CheckpointError as e:
            _assert_names(e, name)
        else:
            assert _same_state(envs.model.state_dict(), saved["model"])
            starts = read_safetensors(saved["run"] / STARTS)
            np.testing.assert_array_equal(envs.starts._frames, starts["frames"].numpy()[:, -envs.starts.length:])
        finally:
            shutil.rmtree(run)

    check()


def _json_paths(obj, prefix=()):
    """Every (path to a value) in a JSON object, dict keys and list indices."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _json_paths(value, (*prefix, key))


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.lists(st.integers(-2, 70), max_size=5), st.lists(st.floats(-5, 5), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=2), st.sampled_from(["Box", "Discrete", ""]))


@st.composite
def edited_json(draw, config: dict) -> bytes:
    """config.json with up to 3 edits, each deleting a key or list item, or putting any JSON value in its place;
    or the whole file replaced by other JSON, a pickle, or nothing at all."""
    kind = draw(st.sampled_from(["edit"] * 8 + ["other", "bytes"]))
    if kind == "other":
        return json.dumps(draw(JSON_VALUES | st.lists(JSON_VALUES, max_size=3))).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64) | st.just(pickle.dumps({"format": config["format"]})))
    config = json.loads(json.dumps(config))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_json_paths(config))
        if not paths:
            break
        *parent_path, key = draw(st.sampled_from(paths))
        parent = config
        for k in parent_path:
            parent = parent[k]
        if draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(JSON_VALUES)
    return json.dumps(config, indent=1).encode()


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # a config with a size 0: refused later
@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_edited_world_model_config_is_refused_or_loads_the_saved_weights(saved, examples):
    """A world model's config.json with keys deleted, values of any type put in their place (NaN, strings, lists,
    sizes that do not fit the weights, ...) or replaced as a whole: loading either raises a CheckpointError naming
    config.json or model.safetensors, or gives a model holding exactly the saved weights; and a dream made from it
    either refuses with a clear error (CheckpointError, ValueError) or steps: frames in its observation space,
    finite rewards."""

    @settings(max_examples=examples)
    @given(st.data())
    def check(data):
        config = json.loads((saved["run"] / CONFIG).read_text())
        run = _copy(saved["run"], saved["scratch"], {CONFIG: data.draw(edited_json(config))})
        try:
            try:
                model = ckpt.load(run)
            except CheckpointError as e:
                assert CONFIG in str(e) or WEIGHTS in str(e), str(e)
                return
            assert _same_state(model.state_dict(), saved["model"])
            try:
                envs = DreamVectorEnv(2, checkpoint=run, device="cpu", max_episode_steps=3)
            except (CheckpointError, ValueError) as e:
                assert str(e)
                return
            obs, _ = envs.reset(seed=0)
            assert envs.observation_space.contains(obs)
            for _ in range(2):
                obs, rewards, *_ = envs.step(envs.action_space.sample())
                assert envs.observation_space.contains(obs) and np.isfinite(rewards).all()
        finally:
            shutil.rmtree(run)

    check()


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # a config with a size 0: refused later
@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_damaged_agent_is_refused_or_loads_the_saved_policy(saved, examples):
    """An agent's model.safetensors damaged (truncated, bit flips, ...) or its config.json edited: loading either
    raises a CheckpointError naming the file, or gives a policy holding exactly the saved weights that acts inside
    its action space."""

    @settings(max_examples=examples)
    @given(st.data(), st.sampled_from([WEIGHTS, CONFIG]))
    def check(data, name):
        original = (saved["agent"] / name).read_bytes()
        strategy = strategies.damaged(original) if name == WEIGHTS else edited_json(json.loads(original))
        agent = _copy(saved["agent"], saved["scratch"], {name: data.draw(strategy)})
        try:
            try:
                policy = load_agent(agent)
            except CheckpointError as e:
                assert CONFIG in str(e) or WEIGHTS in str(e), str(e)
                return
            assert _same_state(policy.net.state_dict(), saved["policy"])
            obs = np.zeros((2, *policy.observation_space.shape), policy.observation_space.dtype)
            actions = policy.act(obs)
            assert all(policy.action_space.contains(a) for a in actions)
        finally:
            shutil.rmtree(agent)

    check()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch.load's note on protocols above 2
@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_pickles_under_any_expected_name_never_run(saved, examples):
    """A pickle (plain, or a torch.save zip) whose unpickling would create a file, put under any name a checkpoint
    or agent directory is read by (config.json, model.safetensors, starts.safetensors, train_state.pt): loading
    raises a CheckpointError naming the file, and the file is never created."""

    @settings(max_examples=examples)
    @given(st.sampled_from(["run", "agent"]), st.data(), st.integers(0, pickle.HIGHEST_PROTOCOL),
           st.sampled_from(["pickle", "torch.save"]))
    def check(which, data, protocol, writer):
        names = [CONFIG, WEIGHTS, STARTS, TRAIN_STATE] if which == "run" else [CONFIG, WEIGHTS]
        name = data.draw(st.sampled_from(names))
        marker = Path(tempfile.mktemp(dir=saved["scratch"].parent, prefix="code-ran-"))
        payload = {"format": "dreamworld-world-model", "weights": Payload(marker)}
        if writer == "pickle":
            blob = pickle.dumps(payload, protocol=protocol)
        else:
            buffer = __import__("io").BytesIO()
            torch.save(payload, buffer, pickle_protocol=max(protocol, 2))
            blob = buffer.getvalue()
        directory = _copy(saved[which], saved["scratch"], {name: blob})
        try:
            with pytest.raises(CheckpointError) as error:
                if which == "agent":
                    load_agent(directory)
                elif name == TRAIN_STATE:
                    ckpt.load_train_state(directory)
                else:
                    DreamVectorEnv(1, checkpoint=directory, device="cpu")
            _assert_names(error.value, name)
            assert not marker.exists()
        finally:
            shutil.rmtree(directory)

    check()


@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_links_out_of_the_directory_are_refused(saved, examples):
    """A file of a checkpoint or agent directory that is a symbolic link (absolute or relative) to a valid copy
    outside it: loading raises a CheckpointError naming the file and the link; a link to a file inside the
    directory loads as the file would."""

    @settings(max_examples=examples)
    @given(st.sampled_from(["run", "agent"]), st.data(), st.booleans())
    def check(which, data, absolute):
        names = [CONFIG, WEIGHTS, STARTS, TRAIN_STATE] if which == "run" else [CONFIG, WEIGHTS]
        name = data.draw(st.sampled_from(names))
        directory = _copy(saved[which], saved["scratch"], {})
        outside = Path(tempfile.mkdtemp(dir=saved["scratch"])) / name
        os.replace(directory / name, outside)
        target = outside if absolute else Path(os.path.relpath(outside, directory))
        (directory / name).symlink_to(target)

        def read():
            if which == "agent":
                return load_agent(directory)
            if name == TRAIN_STATE:
                return ckpt.load_train_state(directory)
            return DreamVectorEnv(1, checkpoint=directory, device="cpu")

        try:
            with pytest.raises(CheckpointError, match="symbolic link") as error:
                read()
            _assert_names(error.value, name)
            (directory / name).unlink()
            (directory / "inside").mkdir()
            os.replace(outside, directory / "inside" / name)
            (directory / name).symlink_to(Path("inside") / name)
            read()
        finally:
            shutil.rmtree(directory)
            shutil.rmtree(outside.parent)

    check()
