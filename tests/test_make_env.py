"""`make_env` on classic control, Atari, Box2D and crafter: the uint8 H x W x 3 convention and key maps."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from dreamworld.envs import builtin_ids, make_env


def _check_pixels(env, size=(64, 64)):
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (*size, 3)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == (*size, 3) and env.observation_space.contains(obs)
    assert isinstance(reward, (int, float, np.integer, np.floating)) and not isinstance(reward, bool)
    assert np.isfinite(reward) and isinstance(terminated, (bool, np.bool_)) and isinstance(truncated, (bool, np.bool_))
    return obs


def test_builtins_accept_short_names():
    for full in builtin_ids():
        short = full.split("/")[1].removesuffix("-v0")
        env = make_env(short)
        assert env.spec.id == full
        _check_pixels(env)


def test_builtin_resized():
    _check_pixels(make_env(builtin_ids()[0], size=(32, 48)), size=(32, 48))


def test_classic_control_renders_to_pixels():
    env = make_env("CartPole-v1")
    obs = _check_pixels(env)
    assert obs.std() > 0  # a real picture, not a blank frame
    assert isinstance(env.action_space, gym.spaces.Discrete)
    assert env.get_wrapper_attr("get_keys_to_action")()[(ord("d"),)] == 1


def test_continuous_actions_stay_continuous():
    env = make_env("Pendulum-v1", size=(48, 48))
    _check_pixels(env, (48, 48))
    assert isinstance(env.action_space, gym.spaces.Box)


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="needs the atari extra")
def test_atari_pong_follows_the_100k_protocol():
    env = make_env("ALE/Pong-v5")
    obs = _check_pixels(env)
    ale = env.unwrapped
    assert ale._frameskip == 1 and env.action_space.n == 6  # minimal action set, skipping done by the wrapper
    assert ale.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    assert ale.ale.getInt("max_num_frames_per_episode") == 108_000
    assert obs.std() > 0
    keys = env.get_wrapper_attr("get_keys_to_action")()
    assert set(keys.values()) >= {1, 2, 3}


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is None, reason="needs the box2d extra")
def test_car_racing():
    env = make_env("CarRacing-v3")
    _check_pixels(env)
    assert env.action_space.shape == (3,)


@pytest.mark.skipif(importlib.util.find_spec("crafter") is None, reason="needs the crafter extra")
def test_crafter():
    env = make_env("crafter")
    _check_pixels(env)
    assert env.action_space.n == 17


def test_unknown_id_names_the_fix():
    with pytest.raises(ValueError, match="unknown env id 'NoSuchGame-v9'"):
        make_env("NoSuchGame-v9")


def test_non_pixel_env_is_refused():
    gym.register("dreamworld_test/NoRender-v0", entry_point=lambda: _NoRender())
    with pytest.raises(ValueError, match="not a pixel env"):
        make_env("dreamworld_test/NoRender-v0")


class _NoRender(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.Discrete(2)
    metadata = {"render_modes": []}


@pytest.mark.parametrize(("env_id", "module", "extra"), [("ALE/Pong-v5", "ale_py", "atari"),
                                                         ("crafter", "crafter", "crafter")])
def test_a_missing_extra_is_named_with_the_command_that_installs_it(monkeypatch, env_id, module, extra):
    """With the env's package missing, make_env raises an ImportError naming the extra and the pip command."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else find_spec(name, *a))
    with pytest.raises(ImportError, match=rf"pip install 'dreamworld\[{extra}\]'"):
        make_env(env_id)


def test_box2d_missing_is_named_with_its_extra(monkeypatch):
    """CarRacing without Box2D (gymnasium finds it missing while importing the env's module): an ImportError naming
    the box2d extra, not gymnasium's traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "Box2D", None)  # import Box2D raises ImportError
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.box2d")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r"CarRacing-v3 .*pip install 'dreamworld\[box2d\]'"):
        make_env("CarRacing-v3")
