"""Closed-loop checks of a dream: the frame-reading heuristics beat random play and read noisy frames alike;
graded_play end to end on toy checkpoints (one episode per row under NEXT_STEP autoreset); the rank correlation."""

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from toy_models import end_module, toy_config

from dreamworld.checkpoint import STARTS, save_model
from dreamworld.envs import make_env
from dreamworld.envs.games.heuristics import heuristic
from dreamworld.envs.games.objects import KINDS
from dreamworld.evaluate.calibration import VIDEO_FRAMES, graded_play, spearman, write_closed_loop_video
from dreamworld.io import write_safetensors
from dreamworld.model.world_model import WorldModel

GAMES = ("Catch", "Bricks", "Cave")

pytestmark = pytest.mark.usefixtures("one_thread")


def play(game: str, policy, seed: int, steps: int = 500) -> tuple[float, int, list[np.ndarray]]:
    """One real episode of at most `steps` steps with policy(frame) -> action (None: random): return, length and
    the frames seen."""
    env = make_env(game, max_episode_steps=steps)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    total, frames = 0.0, []
    for t in range(1, steps + 1):
        frames.append(obs)
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample() if policy is None else policy(obs))
        total += reward
        if terminated or truncated:
            return total, t, frames
    return total, steps, frames


@pytest.mark.parametrize("game", GAMES)
def test_heuristic_beats_random_in_the_real_game(game):
    policy = heuristic(f"dreamworld/{game}-v0")
    smart = [play(game, policy, seed)[:2] for seed in (0, 1)]
    random = [play(game, None, seed)[:2] for seed in (0, 1)]
    smart_return, random_return = np.mean([r for r, _ in smart]), np.mean([r for r, _ in random])
    if game == "Cave":  # coins are rare: the heuristic's worth is that it flies on
        assert np.mean([n for _, n in smart]) > 2 * np.mean([n for _, n in random])
    else:
        assert smart_return > max(2 * random_return, random_return + 3), (smart_return, random_return)


@pytest.mark.parametrize("game", GAMES)
def test_heuristic_reads_noisy_frames_as_clean_ones(game):
    """A drawn frame is off by some levels everywhere: mild noise changes few of the heuristic's actions."""
    policy = heuristic(game)
    _, _, frames = play(game, policy, seed=3, steps=80)
    rng = np.random.default_rng(0)
    same = []
    for frame in frames:
        noise = rng.normal(0, 8, frame.shape).round().astype(np.int16)
        noisy = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        same.append(policy(noisy) == policy(frame))
    assert np.mean(same) >= 0.9, np.mean(same)


def test_heuristic_names_and_actions():
    assert heuristic("CartPole-v1") is None and heuristic("dreamworld/Snake-v0") is None
    for game in GAMES:
        for env_id in (game, f"{game}-v0", f"dreamworld/{game}-v0"):
            assert heuristic(env_id) is not None
        env = make_env(game)
        obs, _ = env.reset(seed=0)
        assert env.action_space.contains(heuristic(game)(obs))
        blank = np.zeros_like(obs)  # nothing to read: still an action
        assert env.action_space.contains(heuristic(game)(blank))


def make_run(path, end_bias: float, space=None, seed: int = 0):
    """A toy checkpoint that models Catch (3 actions) with random start frames; `end_bias` -100: dreams never end,
    +100: every dream ends on its first step."""
    torch.manual_seed(seed)
    cfg = toy_config(space)
    cfg.env_id, cfg.render_fps = "dreamworld/Catch-v0", 15
    model = WorldModel(cfg)
    with torch.no_grad():
        end_module(model).end_head.bias.fill_(end_bias)
    save_model(path, model)
    K, rng = cfg.dynamics.context_frames, np.random.default_rng(seed)
    model.action_space.seed(seed)
    actions = np.stack([np.stack([model.action_space.sample() for _ in range(K - 1)]) for _ in range(2)])
    write_safetensors(path / STARTS, {"frames": torch.from_numpy(rng.integers(0, 256, (2, K, 64, 64, 3), np.uint8)),
                                      "actions": torch.from_numpy(actions)})
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    return {"lasting": make_run(root / "lasting", -100.0), "ending": make_run(root / "ending", 100.0)}


def _finite(x) -> bool:
    return x is None or np.isfinite(x)


def test_graded_play_end_to_end(runs, tmp_path):
    result = graded_play(runs["lasting"], "dreamworld/Catch-v0", steps=20, episodes=2, epsilons=(0.0, 1.0))
    assert {"policies", "rank_correlation", "frames", "steps", "episodes"} <= set(result)
    assert [p["epsilon"] for p in result["policies"]] == [0.0, 1.0]
    for p in result["policies"]:
        for world in ("dream", "real"):
            m = p[world]
            assert set(m["presence"]) == set(KINDS["Catch"])
            assert all(0 <= v <= 1 for v in m["presence"].values())
            assert all(np.isfinite(m[k]) for k in ("reward_per_step", "end_rate", "return", "length"))
            assert 1 <= m["length"] <= 20
        assert p["dream"]["length"] == 20 and p["dream"]["end_rate"] == 0  # these dreams never end
        assert _finite(p["reward_ratio"]) and _finite(p["end_ratio"])
        assert set(p["presence_gap"]) == set(KINDS["Catch"])
    dream_rewards = [p["dream"]["reward_per_step"] for p in result["policies"]]
    real_rewards = [p["real"]["reward_per_step"] for p in result["policies"]]
    rank = result["rank_correlation"]
    if rank is None:  # undefined only when one side gives every policy the same reward per step
        assert len(set(dream_rewards)) == 1 or len(set(real_rewards)) == 1
    else:
        assert -1 <= rank <= 1
    frames = result["frames"]
    assert frames["dream"].shape == (21, 64, 64, 3) and frames["dream"].dtype == np.uint8  # start + 20 steps
    assert frames["real"].dtype == np.uint8 and frames["real"].shape[1:] == (64, 64, 3)
    assert 2 <= len(frames["real"]) <= min(21, VIDEO_FRAMES)
    path = write_closed_loop_video(tmp_path / "closed_loop.mp4", frames, 15)
    video = iio.imread(path)
    assert video.shape[0] == 21 and video.shape[-1] == 3


def test_evaluate_runs_the_closed_loop_where_the_game_has_a_heuristic(runs, tmp_path, capsys):
    from dreamworld.cli.model import EvaluateArgs, _closed_loop, print_closed_loop

    args = EvaluateArgs(checkpoint=str(runs["lasting"]), data="unused", closed_loop_steps=5, closed_loop_episodes=1)
    closed = _closed_loop(args, "dreamworld/Catch-v0", tmp_path, 15)
    assert "frames" not in closed and len(closed["policies"]) == 4  # epsilons 0, 0.25, 0.5, 1
    assert iio.imread(tmp_path / "closed_loop.mp4").shape[0] == 6
    print_closed_loop(closed)
    assert "rew/step" in capsys.readouterr().out
    assert _closed_loop(args, "Toy-v0", tmp_path, 15) is None
    args.closed_loop_episodes = 0
    assert _closed_loop(args, "dreamworld/Catch-v0", tmp_path, 15) is None


def test_graded_play_plays_one_episode_per_row(runs):
    """Dreams that end on their first step count one step and one ending each, not the restarts after them."""
    result = graded_play(runs["ending"], "Catch", steps=20, episodes=2, epsilons=(0.5,))
    dream = result["policies"][0]["dream"]
    assert dream["length"] == 1 and dream["end_rate"] == 1.0
    assert len(result["frames"]["dream"]) == 2 and result["rank_correlation"] is None  # one policy: no ranking


def test_graded_play_refuses_games_it_cannot_play(runs, tmp_path):
    with pytest.raises(ValueError, match="no heuristic"):
        graded_play(runs["lasting"], "CartPole-v1", steps=5, episodes=1)
    box = make_run(tmp_path / "box", -100.0, gym.spaces.Box(-1, 1, (2,), np.float32))
    with pytest.raises(ValueError, match="same Discrete actions"):
        graded_play(box, "Catch", steps=5, episodes=1)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 100, 2]) == pytest.approx(0.5)  # only the ranks count
    # ties share their mean rank: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4); scipy.stats.spearmanr gives 0.9486833
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, abs=1e-7)
    assert spearman([0.1, 0.1, 0.3], [3, 3, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1], [2]) is None
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])
