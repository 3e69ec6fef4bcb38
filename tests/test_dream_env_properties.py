"""Property-based tests of the dream envs' API (hypothesis): random programs of resets (with and without seeds),
steps with actions inside and outside the action space, and close, on `DreamEnv` and `DreamVectorEnv`.

Each example builds fresh envs on one of two toy checkpoints made once per module (Discrete and Box actions; one
dynamics layer that draws a frame's 16 tokens in one pass, so a step costs about 2 ms), and runs its program twice:
as drawn, and without its bad calls, on a second fresh env. 200 examples a property (1,000 with -m slow).
"""

import gymnasium as gym
import numpy as np
import pytest
import strategies
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dream_env import BOX, make_run

from dreamworld.dream.env import DreamEnv
from dreamworld.dream.vector_env import DreamVectorEnv
from dreamworld.model.dynamics import DynamicsConfig

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = ("discrete", "box")
SPACES = {"discrete": gym.spaces.Discrete(3), "box": BOX}
BAD_SEEDS = st.one_of(st.integers(max_value=-1), st.floats(allow_nan=True), st.text(max_size=3))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Cheap toy checkpoints whose dreams end now and then (the dynamics' end head with a zero bias)."""
    root = tmp_path_factory.mktemp("runs")
    cheap = DynamicsConfig(d_model=32, n_layers=1, n_heads=2, context_frames=3, sampler_stride=(1, 1))
    return {kind: make_run(root / kind, SPACES[kind] if kind == "box" else None, end_bias=0.0, dynamics=cheap,
                           frame_termination=False, seed=seed)  # seeds whose dreams end on about 1 step in 3
            for kind, seed in zip(KINDS, (1, 0), strict=True)}


def _check_bad_action_error(error: ValueError, action, space: gym.Space) -> None:
    """The message names the action and the space."""
    message = str(error)
    assert str(space) in message, message
    assert "action" in message, message
    if not isinstance(action, (dict, list, np.ndarray)) or (isinstance(action, np.ndarray) and action.ndim == 0):
        assert strategies.describe(action)[:40] in message, message


@st.composite
def env_programs(draw, vector: bool):
    """(kind, options, program): a program starts with a seeded reset, then resets, good and bad steps."""
    kind = draw(st.sampled_from(KINDS))
    space = SPACES[kind]
    n = draw(st.integers(1, 3)) if vector else 1
    options = {"obs_type": draw(st.sampled_from(["pixels", "latent"])), "max_episode_steps": draw(st.integers(1, 5)),
               "temperature": draw(st.sampled_from([0.0, 1.0]))}
    good, bad = strategies.good_actions(space), strategies.bad_actions(space)
    if vector:
        good_batch = strategies.good_batches(space, n)
        bad_batch = st.one_of(
            st.tuples(st.lists(good, min_size=n, max_size=n), st.integers(0, n - 1), bad).map(
                lambda t: [t[2] if i == t[1] else a for i, a in enumerate(t[0])]).filter(
                lambda b: not _fits_batch(b, space, n)),  # one bad row (numpy makes [False, 0.5] a float row)
            st.lists(good, min_size=1, max_size=4).filter(lambda a: len(a) != n).map(np.array),  # wrong count
            bad.filter(lambda a: not _fits_batch(a, space, n)))  # (2,) is no Discrete action but 2 of them
        seed = st.one_of(st.none(), strategies.seeds(), st.lists(st.none() | st.integers(0, 2**32 - 1),
                                                                 min_size=n, max_size=n))
        masks = st.lists(st.booleans(), min_size=n, max_size=n).filter(any).flatmap(
            lambda m: st.sampled_from([m, np.array(m)]))  # a list or an array of bools
        ops = st.one_of(
            st.tuples(st.just("reset"), seed),
            st.tuples(st.just("reset_mask"), masks, st.none() | strategies.seeds()),
            st.tuples(st.just("step"), good_batch),
            st.tuples(st.just("bad_step"), bad_batch),
            st.tuples(st.just("bad_reset"), st.one_of(
                BAD_SEEDS,
                st.lists(st.none() | st.integers(0, 9), min_size=1, max_size=4).filter(lambda s: len(s) != n),
                st.lists(st.none() | BAD_SEEDS, min_size=n, max_size=n).filter(lambda s: any(x is not None for x in s))
            ), st.none()),
            st.tuples(st.just("bad_mask"), st.one_of(st.just(np.zeros(n, bool)), st.just(np.ones(n + 1, bool)),
                                                     st.just(np.ones(n, np.int64)))))
    else:
        ops = st.one_of(st.tuples(st.just("reset"), st.none() | strategies.seeds()),
                        st.tuples(st.just("step"), good),
                        st.tuples(st.just("bad_step"), bad),
                        st.tuples(st.just("bad_reset"), BAD_SEEDS))
    program = [("reset", draw(strategies.seeds()))] + draw(st.lists(ops, max_size=8))
    return kind, n, options, program


def _fits_batch(actions, space: gym.Space, n: int) -> bool:
    """Whether `actions` is a batch of `n` actions inside `space`."""
    try:
        arr = np.asarray(actions)
    except ValueError:
        return False
    if arr.shape != (n, *space.shape) or arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
        return False
    if isinstance(space, gym.spaces.Discrete):
        return arr.dtype.kind in "iu" and bool(((arr >= space.start) & (arr < space.start + space.n)).all())
    return bool(((arr >= space.low) & (arr <= space.high)).all())


def _is_bad(op) -> bool:
    return op[0].startswith("bad")


class NextStep:
    """What NEXT_STEP autoreset and the time limit promise, per dream: steps since its start, and whether it ended
    on the last step (so the next step restarts it: reward 0, not terminated, not truncated)."""

    def __init__(self, n: int, limit: int):
        self.steps, self.ended, self.limit = np.zeros(n, int), np.zeros(n, bool), limit

    def reset(self, rows) -> None:
        self.steps[rows], self.ended[rows] = 0, False

    def check_step(self, rewards, terminated, truncated) -> None:
        restarted = self.ended.copy()
        self.steps = np.where(restarted, 0, self.steps + 1)
        assert not terminated[restarted].any() and not truncated[restarted].any()
        assert (rewards[restarted] == 0).all()
        assert (truncated == (self.steps >= self.limit)).all(), (truncated, self.steps, self.limit)
        self.ended = terminated | truncated


def _run_vector(run, n, options, program):
    """Run `program` on a fresh DreamVectorEnv, checking every result; the stream of results."""
    envs = DreamVectorEnv(n, checkpoint=run, **options)
    schedule, stream = NextStep(n, options["max_episode_steps"]), []
    for op in program:
        if op[0] == "reset":
            obs, info = envs.reset(seed=op[1])
            schedule.reset(slice(None))
            stream.append(obs)
        elif op[0] == "reset_mask":
            obs, info = envs.reset(seed=op[2], options={"reset_mask": op[1]})
            schedule.reset(np.asarray(op[1]))
            stream.append(obs)
        elif op[0] == "step":
            obs, rewards, terminated, truncated, info = envs.step(op[1])
            assert rewards.shape == terminated.shape == truncated.shape == (n,)
            assert rewards.dtype == np.float64 and np.isfinite(rewards).all()
            assert terminated.dtype == truncated.dtype == bool
            schedule.check_step(rewards, terminated, truncated)
            stream.append((obs, rewards, terminated, truncated))
        elif op[0] == "bad_step":
            with pytest.raises(ValueError) as error:
                envs.step(op[1])
            message = str(error.value)
            assert str(envs.single_action_space) in message and "action" in message, message
            continue
        elif op[0] == "bad_reset":
            with pytest.raises((ValueError, gym.error.Error), match="seed|Seed"):
                envs.reset(seed=op[1])
            continue
        elif op[0] == "bad_mask":
            with pytest.raises(ValueError, match="reset_mask"):
                envs.reset(options={"reset_mask": op[1]})
            continue
        assert isinstance(info, dict)
        assert envs.observation_space.contains(obs), (obs.dtype, obs.shape, obs.min(), obs.max())
    envs.close()
    envs.close()  # a second close is harmless
    return stream


def _run_single(run, options, program):
    """Run `program` on a fresh DreamEnv, checking every result; the stream of results."""
    env = DreamEnv(checkpoint=run, **options)
    schedule, stream = NextStep(1, options["max_episode_steps"]), []
    for op in program:
        if op[0] == "reset":
            obs, info = env.reset(seed=op[1])
            schedule.reset(0)
            stream.append(obs)
        elif op[0] == "step":
            obs, reward, terminated, truncated, info = env.step(op[1])
            assert type(reward) is float and np.isfinite(reward)
            assert type(terminated) is bool and type(truncated) is bool
            schedule.check_step(np.array([reward]), np.array([terminated]), np.array([truncated]))
            stream.append((obs, reward, terminated, truncated))
        elif op[0] == "bad_step":
            with pytest.raises(ValueError) as error:
                env.step(op[1])
            _check_bad_action_error(error.value, op[1], env.action_space)
            continue
        elif op[0] == "bad_reset":
            with pytest.raises((ValueError, gym.error.Error), match="seed|Seed"):
                env.reset(seed=op[1])
            continue
        assert isinstance(info, dict)
        assert env.observation_space.contains(obs), (obs.dtype, obs.shape, obs.min(), obs.max())
    env.close()
    env.close()
    return stream


def _assert_same_stream(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x if isinstance(x, tuple) else (x,), y if isinstance(y, tuple) else (y,), strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_dream_env_survives_any_program(runs, examples):
    """Any program of resets, steps and bad calls on a DreamEnv: observations lie in the observation space, rewards
    are finite floats, truncation comes at max_episode_steps, a bad action or seed raises an error naming it (and
    the space) and changes nothing: the stream equals that of the same program without the bad calls."""

    @settings(max_examples=examples)
    @given(env_programs(vector=False))
    def check(case):
        kind, _, options, program = case
        stream = _run_single(runs[kind], options, program)
        _assert_same_stream(stream, _run_single(runs[kind], options, [op for op in program if not _is_bad(op)]))

    check()


@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_dream_vector_env_survives_any_program(runs, examples):
    """Any program of resets (all dreams or a reset_mask), batched steps and bad calls on a DreamVectorEnv of 1-3
    dreams: observations lie in the batched space, rewards are finite, autoreset is NEXT_STEP (the step after a
    dream ends restarts it: reward 0, not terminated, not truncated), truncation comes at max_episode_steps, and
    a bad action, seed or mask raises an error naming it and changes nothing: the stream equals that of the same
    program without the bad calls."""

    @settings(max_examples=examples)
    @given(env_programs(vector=True))
    def check(case):
        kind, n, options, program = case
        stream = _run_vector(runs[kind], n, options, program)
        _assert_same_stream(stream, _run_vector(runs[kind], n, options, [op for op in program if not _is_bad(op)]))

    check()
