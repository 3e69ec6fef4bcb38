"""Property-based tests of the built-in games through `gymnasium.make` (hypothesis): random programs of resets
(with and without seeds), steps with actions inside and outside the action space, and close. 200 examples a game
(1,000 with -m slow); a game step costs tens of microseconds, so programs are long."""

import gymnasium as gym
import numpy as np
import pytest
import strategies
from hypothesis import given, settings
from hypothesis import strategies as st

import dreamworld  # noqa: F401  (registers dreamworld/Catch-v0, ...)
from dreamworld.envs.games import GAMES


@st.composite
def game_programs(draw, space: gym.Space):
    """(time limit, program): a seeded reset, then resets, steps with actions inside the space and with anything."""
    ops = st.one_of(
        st.tuples(st.just("reset"), st.none() | strategies.seeds()),
        st.tuples(st.just("step"), strategies.good_actions(space)),
        st.tuples(st.just("step"), strategies.bad_actions(space)),
        st.tuples(st.just("step"), st.booleans()))  # Python bools are ints to Discrete.contains
    steps = st.tuples(st.just("step"), strategies.good_actions(space))
    program = [("reset", draw(strategies.seeds()))] + draw(st.lists(st.one_of(ops, steps, steps), max_size=60))
    return draw(st.integers(1, 40)), program


def _run(name: str, limit: int, program) -> list:
    """Run `program` on a fresh env truncated after `limit` steps, checking every result; the stream of results of
    the calls that succeed."""
    env = gym.make(f"dreamworld/{name}-v0", max_episode_steps=limit)
    stream = []
    for op, arg in program:
        if op == "reset":
            obs, info = env.reset(seed=arg)
            stream.append(obs)
        elif env.action_space.contains(arg):
            obs, reward, terminated, truncated, info = env.step(arg)
            assert type(reward) is float and np.isfinite(reward)
            assert type(terminated) is bool and type(truncated) is bool
            stream.append((obs, reward, terminated, truncated))
            if terminated or truncated:  # the episode is over: the next call must be a reset
                obs, info = env.reset()
                stream.append(obs)
        else:
            with pytest.raises(ValueError) as error:
                env.step(arg)
            message = str(error.value)
            assert str(env.action_space) in message and "action" in message, message
            continue
        assert isinstance(info, dict)
        assert env.observation_space.contains(obs), (obs.dtype, obs.shape)
    env.close()
    env.close()  # a second close is harmless
    return stream


@pytest.mark.parametrize("examples", strategies.EXAMPLES)
@pytest.mark.parametrize("name", list(GAMES))
def test_game_survives_any_program(name, examples):
    """Any program of resets and steps with any value on a built-in game: observations lie in the observation space,
    rewards are finite floats, an action the space does not contain raises a ValueError naming it and the space
    and changes nothing (the stream equals that of the same program without the bad calls, on another env), and
    the same seeds and actions give the same stream."""
    space = gym.make(f"dreamworld/{name}-v0").action_space

    @settings(max_examples=examples)
    @given(game_programs(space))
    def check(case):
        limit, program = case
        clean = [(op, arg) for op, arg in program if op == "reset" or space.contains(arg)]
        a, b = _run(name, limit, program), _run(name, limit, clean)
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            for u, v in zip(x if isinstance(x, tuple) else (x,), y if isinstance(y, tuple) else (y,), strict=True):
                np.testing.assert_array_equal(u, v)

    check()
