"""Agents: λ-returns against a hand-computed example, the return normaliser, PPO and the actor-critic solving a
tiny real env, policies saved and loaded, collecting with an agent, and `train-agent` end to end on a toy model."""

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from toy_models import end_module, toy_config

from dreamworld.agents import (
    PPO,
    ActorCritic,
    ActorCriticConfig,
    DreamActorCritic,
    NetworkConfig,
    Policy,
    PPOConfig,
    ReturnNormalizer,
    evaluate,
    lambda_returns,
    load,
)
from dreamworld.checkpoint import STARTS, save_model
from dreamworld.envs import EpisodeDataset, collect
from dreamworld.io import CheckpointError, write_safetensors
from dreamworld.model.world_model import WorldModel

pytestmark = pytest.mark.usefixtures("one_thread")


class Chain(gym.Env):
    """Walk right along 8 cells: +1 on reaching the last one (terminates); truncated after 20 steps. A random
    walk seldom gets there; the best policy takes 7 steps."""

    def __init__(self, n: int = 8):
        self.n = n
        self.observation_space = gym.spaces.Box(0, 1, (n,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self):
        obs = np.zeros(self.n, np.float32)
        obs[self.pos] = 1
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action):
        self.pos = min(max(self.pos + (1 if action == 1 else -1), 0), self.n - 1)
        self.t += 1
        goal = self.pos == self.n - 1
        return self._obs(), float(goal), goal, self.t >= 20 and not goal, {}


def chains(n: int):
    return gym.vector.SyncVectorEnv([Chain for _ in range(n)])


def test_lambda_returns_match_a_hand_computed_example():
    # three rollouts of 3 steps, γ = 0.9, λ = 0.5: no end; terminated at t=1; truncated at t=1
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])  # (T, B)
    values = torch.tensor([[0.5] * 3, [1.0] * 3, [2.0] * 3, [4.0] * 3])  # (T + 1, B)
    terminated = torch.tensor([[False] * 3, [False, True, False], [False] * 3])
    ended = torch.tensor([[False] * 3, [False, True, True], [False] * 3])
    returns = lambda_returns(rewards, values, terminated, ended, gamma=0.9, lam=0.5)
    # no end: R2 = 2 + .9 * 4 = 5.6; R1 = .9 * (.5 * 2 + .5 * 5.6) = 3.42; R0 = 1 + .9 * (.5 * 1 + .5 * 3.42)
    # terminated at t=1: R1 = 0; R0 = 1 + .9 * (.5 * 1 + .5 * 0) = 1.45
    # truncated at t=1: R1 = .9 * v2 = 1.8 (bootstraps from the final observation); R0 = 1 + .9 * (.5 + .9) = 2.26
    expected = torch.tensor([[2.989, 1.45, 2.26], [3.42, 0.0, 1.8], [5.6, 5.6, 5.6]])
    torch.testing.assert_close(returns, expected)
    # λ = 1, γ = 1: the sum of the rewards plus the last value
    ones = lambda_returns(rewards[:, :1], values[:, :1], terminated[:, :1], ended[:, :1], gamma=1.0, lam=1.0)
    torch.testing.assert_close(ones[:, 0], torch.tensor([7.0, 6.0, 6.0]))
    with pytest.raises(ValueError, match=r"values of shape \(T \+ 1, B\)"):
        lambda_returns(rewards, values[:-1], terminated, ended, 0.9, 0.5)


def test_return_normalizer_scales_down_large_spreads_only():
    norm = ReturnNormalizer(decay=0.5)
    assert norm.scale == 1.0
    assert norm.update(torch.linspace(0, 0.5, 101)) == 1.0  # spread 0.45 < 1: advantages are not blown up
    norm = ReturnNormalizer(decay=0.5)
    assert norm.update(torch.linspace(0, 100, 101)) == pytest.approx(90.0)  # P95 - P5
    assert norm.update(torch.linspace(0, 10, 101)) == pytest.approx(0.5 * 90 + 0.5 * 9)


@pytest.mark.parametrize("algo", ["ppo", "actor-critic"])
def test_agents_solve_a_tiny_real_env(algo):
    envs = chains(8)
    net = NetworkConfig(hidden=32)
    if algo == "ppo":
        trainer = PPO(envs, PPOConfig(num_steps=32, network=net), seed=0)
    else:
        trainer = DreamActorCritic(envs, ActorCriticConfig(horizon=16, entropy=1e-2, actor_lr=1e-3, critic_lr=1e-3,
                                                           network=net), seed=0)
    policy = Policy(trainer.net, "vector", "Chain")
    before = evaluate(policy, chains(10), deterministic=True)
    assert before.mean_return < 0.5  # the untrained policy seldom reaches the goal
    for _ in range(40 if algo == "ppo" else 150):
        trainer.update()
    after = evaluate(policy, chains(10), deterministic=True)
    assert after.mean_return == 1.0 and after.mean_length <= 9, (after.returns, after.lengths)
    assert after.terminated == [True] * 10 and not all(before.terminated)  # the goal terminates; 20 steps truncate
    assert trainer.runner.pop_episodes()  # finished training episodes were counted


class Target(gym.Env):
    """One-step Box-action env: reward -(a - x)²."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, (1,)).astype(np.float32)
        return self.x, {}

    def step(self, action):
        return self.x, -float(((action - self.x) ** 2).sum()), True, False, {}


class Lit(gym.Env):
    """One-step env over (4 tokens, 2 dims) codes: one random token is lit; reward 1 for naming it."""

    observation_space = gym.spaces.Box(-1, 1, (4, 2), np.float32)
    action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.lit = int(self.np_random.integers(4))
        obs = np.full((4, 2), -1.0, np.float32)
        obs[self.lit] = 1.0
        return obs, {}

    def step(self, action):
        return np.zeros((4, 2), np.float32), float(action == self.lit), True, False, {}


def test_token_encoder_reads_latent_codes():
    envs = gym.vector.SyncVectorEnv([Lit for _ in range(16)])
    trainer = PPO(envs, PPOConfig(num_steps=8, lr=3e-3, network=NetworkConfig(hidden=32, token_width=16)), seed=0)
    encoder = trainer.net.actor_encoder
    assert encoder.tokens is not None and encoder.mlp[0].in_features == 4 * 16  # per-token features, then the MLP
    for _ in range(30):
        trainer.update()
    after = evaluate(Policy(trainer.net, "latent", "Lit"), gym.vector.SyncVectorEnv([Lit for _ in range(16)]),
                     deterministic=True)
    assert after.mean_return == 1.0, after.returns
    flat = ActorCritic(Lit.observation_space, Lit.action_space, NetworkConfig(token_width=0))
    assert flat.actor_encoder.tokens is None and flat.actor_encoder.mlp[0].in_features == 8


def test_agents_saved_before_the_token_encoder_load_flat(tmp_path):
    flat = ActorCritic(Lit.observation_space, Lit.action_space, NetworkConfig(hidden=16, token_width=0))
    Policy(flat, "latent", "Lit").save(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["network"]["token_width"]  # as written before the field existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 4, 2)).astype(np.float32)
    old = load(tmp_path / "old")
    assert old.net.actor_encoder.tokens is None
    np.testing.assert_array_equal(old.act(obs, deterministic=True), Policy(flat, "latent", "Lit").act(obs, True))


def test_policies_save_and_load(tmp_path):
    pixels = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    net = ActorCritic(pixels, gym.spaces.Discrete(3, start=1), NetworkConfig(hidden=16, channels=[4, 8]))
    policy = Policy(net, "pixels", "dreamworld/Catch-v0", algo="ppo")
    obs = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    policy.save(tmp_path / "a", info={"real_return": 1.5})
    loaded = load(tmp_path / "a")
    assert loaded.config["obs_type"] == "pixels" and loaded.env_id == "dreamworld/Catch-v0"
    assert loaded.config["info"] == {"real_return": 1.5}
    actions = loaded.act(obs, deterministic=True)
    assert actions.shape == (5,) and actions.dtype == np.int64 and set(actions) <= {1, 2, 3}
    np.testing.assert_array_equal(actions, policy.act(obs, deterministic=True))
    with pytest.raises(ValueError, match="do not fit the policy's observation space"):
        loaded.act(obs[0])
    # Box actions, latent observations; PPO runs on Box actions
    envs = gym.vector.SyncVectorEnv([Target for _ in range(4)])
    trainer = PPO(envs, PPOConfig(num_steps=8, network=NetworkConfig(hidden=16)), seed=0)
    trainer.update()
    Policy(trainer.net, "latent", "Target").save(tmp_path / "b")
    box = load(tmp_path / "b").act(np.zeros((3, 1), np.float32))
    assert box.shape == (3, 1) and box.dtype == np.float32 and np.all(np.abs(box) <= 1)
    (tmp_path / "c").mkdir()
    with pytest.raises(CheckpointError, match="not an agent directory"):
        load(tmp_path / "c")
    (tmp_path / "b" / "model.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(CheckpointError, match="pickle"):
        load(tmp_path / "b")


def test_collect_with_an_agent(tmp_path):
    seen = []

    def agent(frames):
        seen.append(frames.shape)
        return np.full(len(frames), 2, np.int64)  # always right

    result = collect("Catch", tmp_path / "data", 60, policy=agent, num_envs=3, progress=False, epsilon=0.2)
    assert result.steps_total == 60 and seen[0] == (3, 64, 64, 3)
    ds = EpisodeDataset(tmp_path / "data")
    assert {e.policy for e in ds.episodes} == {"agent"}
    actions = np.concatenate([ds.episode(i)["actions"] for i in range(len(ds))])
    assert 0.5 < (actions == 2).mean() < 1.0  # mostly the agent's action, some random exploration
    with pytest.raises(ValueError, match="unknown policy"):
        collect("Catch", tmp_path / "x", 10, policy="greedy")


def toy_run(path, seed=0):
    """A randomly initialised toy world model of Catch (16 latent tokens of 3 dims) with random start contexts."""
    torch.manual_seed(seed)
    cfg = toy_config(gym.spaces.Discrete(3), frame_termination=False)  # a random head's logits spread: some ends
    cfg.env_id = "dreamworld/Catch-v0"
    model = WorldModel(cfg)
    with torch.no_grad():
        end_module(model).end_head.bias.fill_(-3.0)  # dreams end now and then
    save_model(path, model)
    K = cfg.dynamics.context_frames
    rng = np.random.default_rng(seed)
    write_safetensors(path / STARTS, {
        "frames": torch.from_numpy(rng.integers(0, 256, (4, K, 64, 64, 3), dtype=np.uint8)),
        "actions": torch.from_numpy(rng.integers(0, 3, (4, K - 1)))})
    return path


@pytest.mark.parametrize("algo, obs_type", [("actor-critic", "latent"), ("ppo", "pixels")])
def test_train_agent_from_the_command_line(tmp_path, algo, obs_type):
    run, agent = toy_run(tmp_path / "run"), tmp_path / "agent"
    out = subprocess.run([sys.executable, "-m", "dreamworld", "train-agent", "--checkpoint", str(run), "--out",
                          str(agent), "--algo", algo, "--obs-type", obs_type, "--steps", "64", "--num-envs", "4",
                          "--actor-critic.horizon", "8", "--ppo.num-steps", "8", "--eval-every", "1",
                          "--eval-episodes", "2", "--eval-max-steps", "6", "--final-episodes", "0",
                          "--max-episode-steps", "10", "--wandb", "disabled", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "dreamworld train-agent" in out.stdout and "imagined return" in out.stdout
    policy = load(agent)
    assert policy.obs_type == obs_type and policy.env_id == "dreamworld/Catch-v0"
    assert policy.config["checkpoint"] == str(run) and policy.config["algo"] == algo
    info = policy.config["info"]
    assert info["steps"] == 64 and len(info["history"]) == 64 // (4 * 8)
    assert {"agent/real_return", "agent/imagined_return", "agent/return_gap"} <= set(info["history"][0])
    envs = gym.make_vec("dreamworld/Dream-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        checkpoint=run, obs_type=obs_type)
    obs, _ = envs.reset(seed=0)
    envs.step(policy.act(obs))  # the policy acts on the dream's observations
    collected = subprocess.run([sys.executable, "-m", "dreamworld", "collect", "--env", "Catch", "--steps", "12",
                                "--out", str(tmp_path / "data"), "--policy", str(agent), "--epsilon", "0.1"],
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stderr[-3000:]
    assert {e.policy for e in EpisodeDataset(tmp_path / "data").episodes} == {"agent"}
    missing = subprocess.run([sys.executable, "-m", "dreamworld", "train-agent", "--checkpoint",
                              str(tmp_path / "none"), "--out", str(agent), "--wandb", "disabled"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
