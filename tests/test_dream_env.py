"""The dream as a Gymnasium env: API checks, determinism, per-dream restarts inside a batch, NEXT_STEP autoreset,
errors, start contexts with and without the dataset, RL libraries, video, human rendering, flat memory."""

import os
import pickle
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from toy_models import end_module, toy_config

import dreamworld
from dreamworld.checkpoint import CONFIG, STARTS, WEIGHTS, save_model
from dreamworld.dream.env import DreamEnv
from dreamworld.dream.vector_env import DreamVectorEnv
from dreamworld.io import CheckpointError, write_safetensors
from dreamworld.model.dynamics import DynamicsConfig
from dreamworld.model.world_model import WorldModel

BOX = gym.spaces.Box(-1, 1, (2,), np.float32)


def make_run(path, space=None, end_bias=-100.0, env_id="Toy-v0", starts=True, dynamics=None, seed=0,
             frame_termination=True):
    """A checkpoint of a randomly initialised toy world model with 4 random start contexts. `end_bias` sets the
    termination head's bias: -100 never ends, +100 always ends (0 ends now and then only with the dynamics' end
    head, `frame_termination=False`: a random termination CNN gives nearly the same logit to every frame)."""
    torch.manual_seed(seed)
    cfg = toy_config(space, frame_termination=frame_termination)
    cfg.env_id, cfg.render_fps = env_id, 15
    if dynamics is not None:
        cfg.dynamics = dynamics
    model = WorldModel(cfg)
    with torch.no_grad():
        end_module(model).end_head.bias.fill_(end_bias)
        model.tokenizer.decoder[-1].weight.normal_(std=0.3)  # untrained, it draws the canvas alone: make tokens show
    save_model(path, model)
    if starts:
        K = cfg.dynamics.context_frames
        rng = np.random.default_rng(seed)
        model.action_space.seed(seed)
        actions = np.stack([np.stack([model.action_space.sample() for _ in range(K - 1)]) for _ in range(4)])
        write_safetensors(path / STARTS, {
            "frames": torch.from_numpy(rng.integers(0, 256, (4, K, 64, 64, 3), dtype=np.uint8)),
            "actions": torch.from_numpy(actions)})
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Toy checkpoints: Discrete actions (never ending), Box actions, and one whose dreams always end."""
    root = tmp_path_factory.mktemp("runs")
    return {"discrete": make_run(root / "discrete"),
            "box": make_run(root / "box", BOX, end_bias=0.0, frame_termination=False),
            "ends": make_run(root / "ends", end_bias=100.0)}


@pytest.mark.parametrize("run, obs_type, temperature", [("discrete", "pixels", 1.0), ("discrete", "latent", 0.0),
                                                         ("box", "pixels", 0.0), ("box", "latent", 1.0)])
def test_check_env(runs, run, obs_type, temperature):
    env = gym.make("dreamworld/Dream-v0", checkpoint=runs[run], obs_type=obs_type, temperature=temperature,
                   render_mode="rgb_array").unwrapped
    check_env(env)
    assert env.action_space == (BOX if run == "box" else gym.spaces.Discrete(3))
    expected = (64, 64, 3) if obs_type == "pixels" else (16, 3)  # toy: 4 x 4 tokens, 3 FSQ dims
    assert env.observation_space.shape == expected
    env.close()


def test_make_and_make_vec(runs):
    dreamworld.register_envs()  # idempotent
    env = gym.make("dreamworld/Dream-v0", checkpoint=runs["discrete"], obs_type="latent")
    assert isinstance(env.unwrapped, DreamEnv) and env.metadata["render_fps"] == 15
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    envs = gym.make_vec("dreamworld/Dream-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        checkpoint=runs["discrete"])
    assert isinstance(envs, DreamVectorEnv) and envs.num_envs == 3
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert envs.action_space == gym.spaces.MultiDiscrete([3, 3, 3])
    obs, _ = envs.reset(seed=0)
    obs, rewards, terminated, truncated, _ = envs.step(envs.action_space.sample())
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8 and rewards.shape == terminated.shape == (3,)
    envs.close()
    env = gym.make("dreamworld/Dream-v0", checkpoint=runs["discrete"], max_episode_steps=2)
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(2)] == [False, True]
    envs = gym.make_vec("dreamworld/Dream-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        checkpoint=runs["discrete"], max_episode_steps=2, obs_type="latent")
    envs.reset(seed=0)
    assert [envs.step(np.zeros(2, np.int64))[3].tolist() for _ in range(2)] == [[False] * 2, [True] * 2]


def test_seeds_fix_the_dream(runs):
    def dream(seed, steps=6):
        env = DreamEnv(checkpoint=runs["discrete"])
        frames = [env.reset(seed=seed)[0]] + [env.step(t % 3)[0] for t in range(steps)]
        return np.stack(frames)

    np.testing.assert_array_equal(dream(3), dream(3))
    assert not np.array_equal(dream(3), dream(4))


def test_latent_observations_are_the_codes_of_the_frames(runs):
    pixels = DreamEnv(checkpoint=runs["discrete"])
    latent = DreamEnv(checkpoint=runs["discrete"], obs_type="latent")
    tokenizer = latent.model.tokenizer
    for frame, codes in [(pixels.reset(seed=1)[0], latent.reset(seed=1)[0])] + [
            (pixels.step(a)[0], latent.step(a)[0]) for a in (0, 2, 1)]:
        tokens = tokenizer.fsq.codes_to_indices(torch.from_numpy(codes))[None]  # (1, N)
        np.testing.assert_array_equal(tokenizer.decode_uint8(tokens)[0].numpy(), frame)


def test_next_step_autoreset(runs):
    envs = DreamVectorEnv(2, checkpoint=runs["ends"], max_episode_steps=100)
    envs.reset(seed=0)
    for step in range(4):
        _, rewards, terminated, truncated, _ = envs.step(np.array([1, 2]))
        ended = step % 2 == 0  # every dream of this model ends at once; the next step restarts it
        assert terminated.tolist() == [ended] * 2 and not truncated.any()
        if not ended:
            assert rewards.tolist() == [0.0, 0.0]
    envs = DreamVectorEnv(2, checkpoint=runs["discrete"], max_episode_steps=3)
    envs.reset(seed=0)
    flags = [envs.step(np.array([0, 0]))[3].tolist() for _ in range(8)]
    assert flags == [[False] * 2, [False] * 2, [True] * 2, [False] * 2] * 2


def _alone(run, actions, max_steps, seeds, **kwargs):
    """Observations, rewards and terminations of one dream run alone with the vector env's NEXT_STEP schedule:
    `seeds` maps a step index to the seed of a restart forced at that step (-1: the initial reset)."""
    env = DreamEnv(checkpoint=run, max_episode_steps=max_steps, **kwargs)
    out, done = [(env.reset(seed=seeds[-1])[0], 0.0, False)], False
    for t, action in enumerate(actions):
        if t in seeds:
            out[-1], done = (env.reset(seed=seeds[t])[0], 0.0, False), False
        if done:
            out.append((env.reset()[0], 0.0, False))
            done = False
            continue
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs, reward, terminated))
        done = terminated or truncated
    return out


@pytest.mark.parametrize("obs_type, temperature, precision", [("latent", 1.0, "float32"), ("latent", 0.0, "float32"),
                                                               ("pixels", 1.0, "float32"), ("latent", 1.0, "bfloat16")])
def test_restart_inside_a_batch_equals_the_dream_alone(runs, obs_type, temperature, precision):
    """Dreams restarted inside a batch (forced with reset_mask, or autoreset after truncation) dream exactly what
    the same dreams run alone with the same seeds and actions dream: the same tokens (latent observations),
    rewards and terminations. Decoded pixels may differ by one level of 255: on the CPU the decoder's float
    rounding depends on the batch size (oneDNN picks other kernels for a batch of 1 or 3)."""
    run, max_steps, steps = runs["box"], 5, 14
    kwargs = {"obs_type": obs_type, "temperature": temperature, "precision": precision}
    envs = DreamVectorEnv(3, checkpoint=run, max_episode_steps=max_steps, **kwargs)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(steps)]
    obs, _ = envs.reset(seed=10)
    batch = [[(o, 0.0, False)] for o in obs]
    for t in range(steps):
        if t == 3:  # restart dream 1 alone, mid-episode, with seed 7
            obs, _ = envs.reset(seed=[None, 7, None], options={"reset_mask": np.array([False, True, False])})
            batch[1][-1] = (obs[1], 0.0, False)
        obs, rewards, terminated, _, _ = envs.step(actions[t])
        for i in range(3):
            batch[i].append((obs[i], rewards[i], terminated[i]))
    ends = 0
    for i in range(3):
        seeds = {-1: 10 + i, **({3: 7} if i == 1 else {})}
        alone = _alone(run, [a[i] for a in actions], max_steps, seeds, **kwargs)
        for t, ((o1, r1, e1), (o2, r2, e2)) in enumerate(zip(batch[i], alone, strict=True)):
            tolerance = 1 if obs_type == "pixels" else 0
            np.testing.assert_allclose(o1.astype(float), o2.astype(float), atol=tolerance, rtol=0,
                                       err_msg=f"dream {i}, step {t}")
            assert (r1, e1) == (r2, e2), f"dream {i}, step {t}"
            ends += e1
    assert ends > 0  # some dreams ended by termination, others by truncation


def test_bfloat16_dreams_keep_float32_frames_and_a_bfloat16_cache(runs):
    """In bfloat16 the dynamics (and so the KV cache) run in bfloat16, the tokenizer in float32: a dream starts
    on the very codes a float32 dream starts on, and its next-frame logits stay close."""
    dreams = {p: DreamVectorEnv(2, checkpoint=runs["discrete"], obs_type="latent", precision=p)
              for p in ("float32", "bfloat16")}
    starts = {p: envs.reset(seed=3)[0] for p, envs in dreams.items()}
    np.testing.assert_array_equal(starts["float32"], starts["bfloat16"])
    assert dreams["bfloat16"]._state.cache.keys[0].dtype == torch.bfloat16
    states = {p: envs.model.predict(envs._state, np.array([1, 2])).float() for p, envs in dreams.items()}
    torch.testing.assert_close(states["bfloat16"], states["float32"], atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        DreamVectorEnv(1, checkpoint=runs["discrete"], precision="half")


def test_bad_actions_are_named(runs):
    env = DreamEnv(checkpoint=runs["discrete"])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action 7 is outside Discrete\(3\)"):
        env.step(7)
    with pytest.raises(ValueError, match="Discrete actions are integers"):
        env.step(1.5)
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step([1, 2])
    box = DreamEnv(checkpoint=runs["box"])
    box.reset(seed=0)
    with pytest.raises(ValueError, match=r"action \[2.0, 0.0\] is outside Box"):
        box.step(np.array([2.0, 0.0]))
    envs = DreamVectorEnv(3, checkpoint=runs["discrete"])
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.array([0, 1, 2]))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\) do not fit 3 dream"):
        envs.step(np.array([0, 1]))
    with pytest.raises(ValueError, match=r"action 5 is outside Discrete\(3\) \(dream 1\)"):
        envs.step(np.array([0, 5, 1]))
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.zeros(3, bool)})


class _Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_bad_checkpoints_are_refused(tmp_path, runs):
    with pytest.raises(CheckpointError, match="does not exist"):
        gym.make("dreamworld/Dream-v0", checkpoint=tmp_path / "nothing")
    run = make_run(tmp_path / "run")
    weights = (run / WEIGHTS).read_bytes()
    (run / WEIGHTS).write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        DreamEnv(checkpoint=run)
    marker = tmp_path / "code-ran"
    (run / WEIGHTS).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="pickle"):
        DreamEnv(checkpoint=run)
    (run / WEIGHTS).write_bytes(weights)
    (run / STARTS).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="pickle"):
        DreamEnv(checkpoint=run)
    write_safetensors(run / STARTS, {"frames": torch.zeros(2, 4, 32, 32, 3, dtype=torch.uint8)})
    with pytest.raises(CheckpointError, match="does not hold start contexts"):
        DreamEnv(checkpoint=run)
    assert not marker.exists()
    (run / CONFIG).write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="not a dreamworld world-model config"):
        DreamEnv(checkpoint=run)


def test_starts_from_the_dataset_or_the_checkpoint(tmp_path):
    from dreamworld.envs import collect

    data = tmp_path / "data"
    collect("dreamworld/Catch-v0", data, steps=40, progress=False)
    run = make_run(tmp_path / "run", env_id="dreamworld/Catch-v0", starts=False)
    with pytest.raises(CheckpointError, match="data=DATASET"):
        DreamEnv(checkpoint=run)
    env = gym.make("dreamworld/Dream-v0", checkpoint=run, data=data, render_mode="rgb_array").unwrapped
    check_env(env)
    starts = [env.reset(seed=s)[0] for s in range(4)]
    assert len({frame.tobytes() for frame in starts}) > 1  # random windows of the dataset
    other = make_run(tmp_path / "other", BOX, env_id="dreamworld/Catch-v0", starts=False)
    with pytest.raises(ValueError, match="does not match the world model"):
        DreamEnv(checkpoint=other, data=data)
    other = make_run(tmp_path / "bricks", env_id="dreamworld/Bricks-v0", starts=False)
    with pytest.raises(ValueError, match="does not match the world model"):
        DreamEnv(checkpoint=other, data=data)
    make_run(run, env_id="dreamworld/Catch-v0")  # now with starts.safetensors: no dataset needed
    DreamEnv(checkpoint=run).reset(seed=0)


def test_keys_to_action_and_play(tmp_path, runs):
    import pygame
    from gymnasium.utils.play import play

    from dreamworld.envs import make_env

    with pytest.raises(RuntimeError, match="Toy-v0.*not available"):
        DreamEnv(checkpoint=runs["discrete"]).get_keys_to_action()
    run = make_run(tmp_path / "catch", env_id="dreamworld/Catch-v0")
    env = DreamEnv(checkpoint=run, render_mode="rgb_array")
    assert env.get_keys_to_action() == make_env("dreamworld/Catch-v0").get_wrapper_attr("get_keys_to_action")()
    steps = []

    def quit_after_five(*transition):
        steps.append(transition)
        if len(steps) == 5:
            pygame.event.post(pygame.event.Event(pygame.QUIT))

    play(env, fps=1000, callback=quit_after_five, seed=0)
    assert len(steps) == 5


def test_stable_baselines3_ppo_trains_on_a_dream(runs):
    from stable_baselines3 import PPO

    env = gym.make("dreamworld/Dream-v0", checkpoint=runs["box"], obs_type="latent", max_episode_steps=64)
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=2048)
    assert model.num_timesteps == 2048  # 4 rollouts of 512 steps
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))  # it learned
    episodes = list(model.ep_info_buffer)  # dreams that ended (or were cut at 64 steps), as SB3's Monitor saw them
    assert episodes and all(1 <= e["l"] <= 64 and np.isfinite(e["r"]) for e in episodes)


def test_record_video(tmp_path, runs):
    import imageio_ffmpeg

    env = gym.make("dreamworld/Dream-v0", checkpoint=runs["discrete"], render_mode="rgb_array",
                   max_episode_steps=10)
    env = gym.wrappers.RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda _: True, disable_logger=True)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1
    assert imageio_ffmpeg.count_frames_and_secs(str(videos[0]))[0] == 11  # the start frame and 10 steps


def test_human_render(runs, monkeypatch):
    import pygame

    env = DreamEnv(checkpoint=runs["discrete"], render_mode="human")
    env.reset(seed=0)
    env.step(1)
    assert pygame.display.get_surface().get_size() == (512, 512)  # 64 x 64 scaled by 8
    env.close()
    envs = DreamVectorEnv(3, checkpoint=runs["discrete"], render_mode="human")
    envs.reset(seed=0)
    assert pygame.display.get_surface().get_size() == (512, 512)  # a 2 x 2 grid of 64 x 64 frames, scaled by 4
    envs.close()
    monkeypatch.setitem(__import__("sys").modules, "pygame", None)
    with pytest.raises(ImportError, match=r"pip install 'dreamworld\[play\]'"):
        DreamEnv(checkpoint=runs["discrete"], render_mode="human").reset(seed=0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("steps", [20_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_memory_stays_flat_over_a_long_dream(tmp_path, steps):
    """One dream, `steps` steps in a row: 20,000 in the default run, 100,000 with `-m slow` (5-9 minutes on 2 cores,
    each step draws its frame for the termination CNN in 3.3-5.3 ms; it was half the suite's time). The KV cache
    keeps its size and the process memory (RSS: torch's allocations are invisible to tracemalloc) does not grow
    between the tenth step and the last."""
    run = make_run(tmp_path / "run", dynamics=DynamicsConfig(d_model=64, n_layers=1, n_heads=4, context_frames=3))
    env = DreamEnv(checkpoint=run, obs_type="latent", temperature=0.0, max_episode_steps=10**9)
    env.reset(seed=0)
    cache = env.dreams._state.cache
    start = time.perf_counter()
    for t in range(steps):
        env.step(1)
        if t == steps // 10:
            rss, shapes = _rss_bytes(), [tuple(k.shape) for k in cache.keys]
    assert [tuple(k.shape) for k in cache.keys] == shapes == [(1, 4, 2 * 16, 16)]  # 2 frames of 16 tokens
    assert cache.frame == steps + 2
    growth = _rss_bytes() - rss
    assert growth < 4 * 2**20, f"memory grew {growth / 2**20:.1f} MiB over {steps - steps // 10} steps"
    print(f"{steps} steps in {time.perf_counter() - start:.1f} s, RSS growth {growth / 2**20:.2f} MiB")
