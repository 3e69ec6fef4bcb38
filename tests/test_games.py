"""Tests of the built-in games: API conformance, determinism, rendering, key maps, policies, small objects."""

import importlib.util
import os
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dreamworld.envs.games as games
from dreamworld.envs.games import bricks, catch, cave

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
games.register_games()

NAMES = list(games.GAMES)
HAS_PYGAME = importlib.util.find_spec("pygame") is not None
needs_pygame = pytest.mark.skipif(not HAS_PYGAME, reason="pygame is not installed")


def env_id(name: str) -> str:
    return f"dreamworld/{name}-v0"


def play_episode(env: gym.Env, seed: int, policy: str, max_steps: int) -> tuple[float, bool]:
    """Return and whether the episode terminated, for the random or scripted policy."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(max_steps):
        if policy == "scripted":
            action = env.unwrapped.scripted_action()
        else:
            action = int(rng.integers(env.action_space.n))
        _, reward, terminated, truncated, _ = env.step(action)
        total += reward
        if terminated or truncated:
            return total, terminated
    return total, False


def test_register_games_is_idempotent():
    games.register_games()
    for name in NAMES:
        spec = gym.spec(env_id(name))
        assert spec.entry_point.startswith("dreamworld.envs.games.") and spec.entry_point.endswith(f":{name}")
        assert spec.max_episode_steps == games.MAX_EPISODE_STEPS[name]


@pytest.mark.parametrize("name", NAMES)
def test_check_env_unwrapped(name):
    env = gym.make(env_id(name)).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=not HAS_PYGAME)
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_check_env_through_make(name):
    env = gym.make(env_id(name))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=not HAS_PYGAME)
    # the only complaint allowed is that the env is wrapped (TimeLimit and friends)
    assert all("different from the unwrapped version" in str(w.message) for w in caught), caught
    env.close()


def rollout(name: str, seed: int, steps: int = 300) -> tuple[list[np.ndarray], list[float]]:
    env = gym.make(env_id(name))
    env.action_space.seed(123)
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            frames.append(obs)
    return frames, rewards


@pytest.mark.parametrize("name", NAMES)
def test_seeded_determinism(name):
    frames_a, rewards_a = rollout(name, seed=7)
    frames_b, rewards_b = rollout(name, seed=7)
    assert rewards_a == rewards_b
    assert len(frames_a) == len(frames_b)
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b, strict=True))
    frames_c, _ = rollout(name, seed=8)
    assert any(not np.array_equal(a, c) for a, c in zip(frames_a, frames_c, strict=False))


@pytest.mark.parametrize("name", NAMES)
def test_observations_and_rgb_array_render(name):
    env = gym.make(env_id(name), render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    assert "score" in info
    for _ in range(50):
        assert obs.dtype == np.uint8 and obs.shape == (64, 64, 3)
        assert env.observation_space.contains(obs)
        assert np.array_equal(env.render(), obs)
        obs, _, terminated, _, info = env.step(env.action_space.sample())
        if terminated:
            obs, info = env.reset()
    assert len(np.unique(obs.reshape(-1, 3), axis=0)) >= 4  # a picture, not a blank screen


@pytest.mark.parametrize("name", NAMES)
def test_invalid_action_is_rejected(name):
    env = games.GAMES[name]()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step(env.action_space.n)


@needs_pygame
@pytest.mark.parametrize("name", NAMES)
def test_human_render(name):
    env = gym.make(env_id(name), render_mode="human")
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    assert env.render() is None
    env.close()


def test_human_render_without_pygame_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # makes `import pygame` raise ImportError
    env = games.Catch(render_mode="human")
    with pytest.raises(ImportError, match=r"dreamworld\[play\]"):
        env.reset(seed=0)


@pytest.mark.parametrize("name", NAMES)
def test_keys_to_action(name):
    env = games.GAMES[name]()
    mapping = env.get_keys_to_action()
    assert () not in mapping  # gymnasium's play() rejects empty tuples; no key means play's noop, action 0
    assert all(keys == tuple(sorted(keys)) and all(isinstance(k, int) for k in keys) for keys in mapping)
    assert set(mapping.values()) | {0} == set(range(env.action_space.n))
    assert 0 not in mapping.values()
    if HAS_PYGAME:  # arrow keys do what their WASD letters do
        import pygame

        arrows = {"w": pygame.K_UP, "a": pygame.K_LEFT, "s": pygame.K_DOWN, "d": pygame.K_RIGHT}
        for letter, arrow in arrows.items():
            if (ord(letter),) in mapping:
                assert mapping[(arrow,)] == mapping[(ord(letter),)]


@needs_pygame
def test_gymnasium_play_accepts_key_map():
    import pygame
    from gymnasium.utils.play import play

    env = gym.make(env_id("Catch"), render_mode="rgb_array")
    keys = env.unwrapped.get_keys_to_action()
    assert keys[(ord("a"),)] == keys[(pygame.K_LEFT,)] == catch.Catch.LEFT
    assert keys[(ord("d"),)] == keys[(pygame.K_RIGHT,)] == catch.Catch.RIGHT
    steps = []

    def quit_after_two(*transition):
        steps.append(transition)
        if len(steps) == 2:
            pygame.event.post(pygame.event.Event(pygame.QUIT))  # play() handles it and returns

    play(env, zoom=2, seed=0, callback=quit_after_two)
    env.close()
    assert len(steps) == 2  # play() took the key map and stepped the game until asked to quit
    for _, next_obs, action, reward, *_ in steps:
        assert action == catch.Catch.NOOP and next_obs.shape == (64, 64, 3) and reward in (0.0, 1.0)  # the no-op
    assert np.array_equal(steps[1][0], steps[0][1])  # one game, stepped twice


@pytest.mark.parametrize("name", NAMES)
def test_scripted_beats_random(name):
    env = gym.make(env_id(name))
    scripted = [play_episode(env, seed, "scripted", 1000)[0] for seed in range(3)]
    randoms = [play_episode(env, seed, "random", 1000)[0] for seed in range(3)]
    assert np.mean(scripted) >= 10
    assert np.mean(scripted) > 2 * np.mean(randoms) + 1


@pytest.mark.parametrize("name", NAMES)
def test_random_play_terminates(name):
    env = gym.make(env_id(name))
    assert any(play_episode(env, seed, "random", 3000)[1] for seed in range(5))


@pytest.mark.parametrize("name", NAMES)
def test_scripted_play_survives(name):
    env = gym.make(env_id(name))
    assert not play_episode(env, 0, "scripted", 1000)[1]


def count_color(frame: np.ndarray, color: np.ndarray) -> int:
    return int(np.all(frame == color, axis=-1).sum())


def test_bricks_ball_is_2x2():
    env = games.Bricks()
    env.reset(seed=0)
    for _ in range(100):
        obs, *_ = env.step(env.scripted_action())
        if 0 <= env.ball_y <= 62:
            assert count_color(obs, bricks.BALL_COLOR) == 4
            ys, xs = np.nonzero(np.all(obs == bricks.BALL_COLOR, axis=-1))
            assert np.ptp(ys) == 1 and np.ptp(xs) == 1


def test_cave_coins_are_2x2_and_view_scrolls():
    env = games.Cave()
    obs, _ = env.reset(seed=0)
    seen_coins = 0
    for _ in range(200):
        previous = obs
        obs, *_ = env.step(env.scripted_action())
        whole = [c for c in env.coins if 0 <= c[0] <= 62]
        seen_coins += len(whole)
        assert count_color(obs, cave.COIN_COLOR) == 4 * len(whole)
        # the cave moved one pixel left: most of the old view reappears shifted
        rows = slice(cave.CAVE_TOP, 64)
        assert np.mean(obs[rows, 20:50] == previous[rows, 21:51]) > 0.9
        assert not np.array_equal(obs[rows, 20:50], previous[rows, 20:50])
    assert seen_coins > 0


def test_catch_gems_and_bombs_are_small():
    env = games.Catch()
    env.reset(seed=0)
    kinds_seen = set()
    for _ in range(300):
        obs, *_ = env.step(env.scripted_action())
        for kind, color in enumerate(catch.ITEM_COLORS):
            items = [item for item in env.items if item[3] == kind]
            kinds_seen.update(item[3] for item in items)
            assert count_color(obs, color) == catch.ITEM_SIZE[kind] ** 2 * len(items)
    assert kinds_seen == {catch.GEM, catch.BOMB}
