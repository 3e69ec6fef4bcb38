"""Object observations (envs/games/object_vector.py and where agents meet them): the vector read off a real frame
equals the one made from the game's own state, moves are the sprites' speeds, the real-game wrapper and a dream
give the same vector for the same frames, observations lie in their space, an objects policy saved and loaded plays
the real game from its frames, `train-agent --obs-type objects` runs, and envs without a parser get a clear error."""

import functools
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from test_agents import toy_run
from test_dream_env import make_run

from dreamworld import worlds
from dreamworld.agents import ActorCritic, NetworkConfig, Policy, evaluate, load
from dreamworld.dream.agent_envs import frame_policy, real_envs
from dreamworld.dream.env import DreamEnv
from dreamworld.dream.observations import reads_frames
from dreamworld.dream.vector_env import DreamVectorEnv
from dreamworld.envs import make_env
from dreamworld.envs.games import (
    Bricks,
    Catch,
    Cave,
    ObjectEncoder,
    ObjectObservation,
    object_fields,
    object_space,
    object_vector,
)
from dreamworld.envs.games.object_vector import LAYOUTS, SPEED

pytestmark = pytest.mark.usefixtures("one_thread")

GAMES = {"Catch": Catch, "Bricks": Bricks, "Cave": Cave}
STEPS = 1000


@functools.cache
def played(name: str) -> list[tuple]:
    """STEPS steps of a game, 70% scripted and 30% random actions, a new game after each end: for each frame
    (frame, true objects, true gap or None, whether it ended a game, the items on screen)."""
    env, rng = GAMES[name](), np.random.default_rng(0)
    frame, _ = env.reset(seed=0)
    ended, record = False, []
    for _ in range(STEPS):
        gap = env.true_gap() if name == "Cave" else None
        record.append((frame, env.true_objects(), gap, ended, [tuple(i) for i in getattr(env, "items", [])]))
        if ended:
            frame, _ = env.reset(seed=int(rng.integers(1 << 30)))
            ended = False
            continue
        action = env.scripted_action() if rng.random() < 0.7 else int(rng.integers(env.action_space.n))
        frame, _, ended, _, _ = env.step(action)
    return record


def vectors(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The played frames' vectors read off the frames (ObjectEncoder) and made from the game's state, (n, size)."""
    encoder, read, true, before = ObjectEncoder(name), [], [], None
    for i, (frame, truth, gap, _, _) in enumerate(played(name)):
        if i and played(name)[i - 1][3]:  # a new game
            encoder.reset()
            before = None
        read.append(encoder(frame[None])[0])
        true.append(object_vector(name, truth, before, gap))
        before = truth
    return np.stack(read), np.stack(true)


@pytest.mark.parametrize("name", GAMES)
def test_the_vector_of_a_real_frame_equals_the_one_of_the_game_state(name):
    read, true = vectors(name)
    ended = np.array([r[3] for r in played(name)])
    fields = np.array(object_fields(name))
    if name == "Cave":  # a crashed ship is drawn over the wall it hit, hiding it: only the gap of that frame differs
        gap = np.char.startswith(fields, "gap")
        np.testing.assert_array_equal(read[ended][:, ~gap], true[ended][:, ~gap])
        read, true = read[~ended], true[~ended]
        assert ended.sum() >= 2  # crashes occur
    np.testing.assert_array_equal(read, true)
    space = object_space(name)
    assert read.shape[1:] == space.shape == (len(fields),) and all(space.contains(v) for v in read)
    for kind, slots in LAYOUTS[name].slots:  # every sprite had its slot, and each kind was seen moving
        assert max(sum(s.kind == kind for s in r[1].sprites) for r in played(name)) <= slots
        i = list(fields).index(f"{kind}0.vx")
        assert np.abs(read[:, i:i + 2]).max() > 0


def test_the_moves_of_catch_items_are_their_speeds():
    read, _ = vectors("Catch")
    fields = object_fields("Catch")
    checked = 0
    for vector, (_, _, _, _, items) in zip(read[1:], played("Catch")[1:], strict=True):
        speeds = {(x + (s - 1) / 2, y + (s - 1) / 2): speed for x, y, speed, kind in items for s in [(2, 3)[kind]]}
        for kind, slots in (("gem", 8), ("bomb", 6)):
            for i in range(slots):
                at = fields.index(f"{kind}{i}.present")
                present, x, y, vx, vy = vector[at:at + 5]
                centre = (round(x * 126) / 2, round(y * 126) / 2)  # pixels, to the half pixel
                if present and centre in speeds and centre[1] > 10:  # not one that just appeared
                    assert (vx * SPEED, vy * SPEED) == (0, speeds[centre])
                    checked += 1
    assert checked > 1000


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.parametrize("name", GAMES)
def test_the_wrapper_reads_the_real_game(name):
    env = ObjectObservation(make_env(name))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    raw = make_env(name)
    frame, _ = raw.reset(seed=3)
    encoder = ObjectEncoder(f"dreamworld/{name}-v0")
    np.testing.assert_array_equal(obs, encoder(frame[None])[0])
    for action in [0, 1, 2] * 5:
        obs, *_ = env.step(action)
        frame, *_ = raw.step(action)
        np.testing.assert_array_equal(obs, encoder(frame[None])[0])
        assert env.observation_space.contains(obs)


def test_envs_without_a_parser_get_a_clear_error(tmp_path):
    for make in (lambda: ObjectObservation(make_env("CartPole-v1")), lambda: object_space("ALE/Pong-v5"),
                 lambda: real_envs("CartPole-v1", 1, "objects")):
        with pytest.raises(ValueError, match="no frame parser.*dreamworld/Catch-v0.*obs_type 'pixels'"):
            make()
    with pytest.raises(ValueError, match="Toy-v0.*no frame parser"):
        DreamVectorEnv(1, checkpoint=make_run(tmp_path / "toy"), obs_type="objects")
    with pytest.raises(ValueError, match="gap=objects.read_gap"):
        object_vector("Cave", played("Cave")[0][1])


class Replay(gym.Env):
    """Shows the given frames one after another, whatever the actions (here: frames a dream drew)."""

    observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, frames: list[np.ndarray]):
        self.frames, self.t = frames, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.frames[0], {}

    def step(self, action):
        self.t += 1
        return self.frames[self.t], 0.0, False, False, {}


@pytest.mark.parametrize("world", ["catch", "bricks"])
def test_a_dream_and_the_wrapper_read_the_same_frames_alike(world):
    """The dream's object vectors equal what the real-game wrapper makes of the frames the dream shows; only the
    first one's moves differ, measured from the frame before in the dream's real context (the wrapper's reset shows
    none)."""
    dreams = DreamVectorEnv(2, checkpoint=worlds.path(world), obs_type="objects", render_mode="rgb_array")
    obs, _ = dreams.reset(seed=0)
    seen, frames = [obs], [dreams.render()]
    for _ in range(12):
        obs, _, terminated, truncated, _ = dreams.step(dreams.action_space.sample())
        assert not (terminated | truncated).any()
        assert dreams.observation_space.contains(obs)
        seen.append(obs)
        frames.append(dreams.render())
    fields = object_fields(world.capitalize())
    moves = np.array([f.endswith((".vx", ".vy")) for f in fields])
    for row in range(2):
        env = ObjectObservation(Replay([f[row] for f in frames]), env_id=dreams.model.cfg.env_id)
        obs, _ = env.reset()
        np.testing.assert_array_equal(obs[~moves], seen[0][row][~moves])
        for t in range(1, len(frames)):
            np.testing.assert_array_equal(env.step(0)[0], seen[t][row])
    present = np.array([f.endswith(".present") for f in fields])
    assert np.stack(seen)[..., present].any()  # the frames show sprites


def test_dreams_of_objects_restart_like_the_others(tmp_path):
    """NEXT_STEP autoreset, reset_mask leaving the other dreams' observations as they were, and the Gymnasium API
    of a single dream."""
    dreams = DreamVectorEnv(2, checkpoint=make_run(tmp_path / "ends", env_id="dreamworld/Catch-v0", end_bias=100.0),
                            obs_type="objects")
    obs, _ = dreams.reset(seed=1)
    assert obs.shape == (2, 76) and obs.dtype == np.float32 and dreams.observation_space.contains(obs)
    obs, rewards, terminated, _, _ = dreams.step(np.zeros(2, np.int64))
    assert terminated.all()
    after, rewards, terminated, truncated, _ = dreams.step(np.zeros(2, np.int64))
    assert not (terminated | truncated).any() and (rewards == 0).all() and dreams.observation_space.contains(after)
    again, _ = dreams.reset(options={"reset_mask": np.array([True, False])})
    np.testing.assert_array_equal(again[1], after[1])
    check_env(DreamEnv(checkpoint=worlds.path("cave"), obs_type="objects"), skip_render_check=True)


def test_an_objects_policy_saved_and_loaded_plays_the_real_game_from_frames(tmp_path):
    space = object_space("Catch")
    net = ActorCritic(space, gym.spaces.Discrete(3), NetworkConfig(hidden=16, layers=1))
    Policy(net, "objects", "dreamworld/Catch-v0").save(tmp_path / "agent")
    policy = load(tmp_path / "agent")
    assert policy.obs_type == "objects" and policy.observation_space.shape == space.shape
    raw, wrapped = make_env("Catch"), ObjectObservation(make_env("Catch"))
    frame, _ = raw.reset(seed=5)
    obs, _ = wrapped.reset(seed=5)
    reader = reads_frames(policy)
    for _ in range(60):  # acting on frames is acting on the vectors the wrapper reads off them
        action = reader.act(frame[None], deterministic=True)
        np.testing.assert_array_equal(action, policy.act(obs[None], deterministic=True))
        frame, *_ = raw.step(int(action[0]))
        obs, *_ = wrapped.step(int(action[0]))
    reader.reset()
    frames = np.stack([frame, frame])
    actions = frame_policy(policy)(frames)
    assert actions.shape == (2,) and actions.dtype == np.int64
    result = evaluate(policy, real_envs("Catch", 2, "objects", max_episode_steps=30))
    assert result.lengths == [30, 30]


def test_train_agent_on_objects_from_the_command_line(tmp_path):
    run, agent = toy_run(tmp_path / "run"), tmp_path / "agent"
    out = subprocess.run([sys.executable, "-m", "dreamworld", "train-agent", "--checkpoint", str(run), "--out",
                          str(agent), "--algo", "ppo", "--obs-type", "objects", "--steps", "32", "--num-envs", "4",
                          "--ppo.num-steps", "8", "--eval-every", "1", "--eval-episodes", "2", "--eval-max-steps", "6",
                          "--final-episodes", "0", "--max-episode-steps", "10", "--wandb", "disabled",
                          "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    policy = load(agent)
    assert policy.obs_type == "objects" and policy.observation_space.shape == object_space("Catch").shape


def test_an_objects_agent_plays_the_dream_in_the_window(tmp_path):
    from dreamworld.cli.play import PlayArgs, build_app
    from dreamworld.play import PlayOptions

    net = ActorCritic(object_space("Catch"), gym.spaces.Discrete(3), NetworkConfig(hidden=16, layers=1))
    Policy(net, "objects", "dreamworld/Catch-v0").save(tmp_path / "agent")
    app = build_app(PlayArgs(world="catch", agent=str(tmp_path / "agent"),
                             window=PlayOptions(script="m,wait*3", fps=0)))
    app.run()
    assert app.agent_mode and app.players == {"agent"} and len(app.session.dream.actions) == 4
