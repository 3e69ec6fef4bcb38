"""Episode datasets: round trip, windows, crash recovery, locking and clear errors."""

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest

from dreamworld.envs import DatasetError, DatasetWriter, EpisodeDataset, collect
from dreamworld.envs.dataset import manifest_digest

SPACE = gym.spaces.Discrete(4)


def _episode(rng, steps, shape=(8, 8, 3)):
    frames = rng.integers(0, 256, (steps + 1, *shape), dtype=np.uint8)
    actions = rng.integers(0, 4, steps)
    rewards = rng.normal(size=steps).astype(np.float32)
    terminated = np.zeros(steps, bool)
    terminated[-1] = True
    return frames, actions, rewards, terminated, np.zeros(steps, bool)


def test_round_trip_and_windows(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [_episode(rng, n) for n in (5, 64, 130)]
    with DatasetWriter(tmp_path / "d", "Toy-v0", (8, 8, 3), SPACE, chunk_frames=16) as w:
        for ep in episodes:
            w.add_episode(*ep, policy="random")
    ds = EpisodeDataset(tmp_path / "d")
    assert len(ds) == 3 and ds.steps == 5 + 64 + 130
    assert ds.action_space == SPACE and ds.env_id == "Toy-v0"
    for i, (frames, actions, rewards, terminated, _) in enumerate(episodes):
        ep = ds.episode(i)
        np.testing.assert_array_equal(ep["frames"], frames)
        np.testing.assert_array_equal(ep["actions"], actions)
        np.testing.assert_array_equal(ep["rewards"], rewards)
        np.testing.assert_array_equal(ep["terminated"], terminated)
        assert ds.episodes[i].ret == pytest.approx(float(rewards.sum()), rel=1e-5)
    # windows that cross chunk boundaries (16 frames per chunk) and touch the episode's end
    frames, actions, rewards, *_ = episodes[2]
    for start, length in [(0, 1), (10, 20), (15, 17), (100, 30), (129, 1)]:
        win = ds.window(2, start, length)
        np.testing.assert_array_equal(win["frames"], frames[start : start + length + 1])
        np.testing.assert_array_equal(win["actions"], actions[start : start + length])
        np.testing.assert_array_equal(win["rewards"], rewards[start : start + length])
    with pytest.raises(IndexError, match="outside episode"):
        ds.window(2, 120, 11)
    stats = ds.stats()
    assert stats["episodes"] == 3 and sum(stats["action_histogram"]) == ds.steps


def test_frames_are_compressed(tmp_path):
    frames = np.zeros((201, 64, 64, 3), np.uint8)
    frames[:, 10:12, 20:22] = 255
    with DatasetWriter(tmp_path, "Toy-v0", (64, 64, 3), SPACE) as w:
        w.add_episode(frames, np.zeros(200, int), np.zeros(200), np.zeros(200, bool), np.zeros(200, bool))
    size = sum(f.stat().st_size for f in (tmp_path / "episodes").iterdir())
    assert size < frames.nbytes / 20


def test_box_actions_round_trip(tmp_path):
    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    actions = np.random.default_rng(1).uniform(-1, 1, (10, 3)).astype(np.float32)
    with DatasetWriter(tmp_path, "Car-v0", (8, 8, 3), space) as w:
        w.add_episode(np.zeros((11, 8, 8, 3), np.uint8), actions, np.zeros(10), np.zeros(10, bool), np.ones(10, bool))
    ds = EpisodeDataset(tmp_path)
    assert ds.action_space == space
    np.testing.assert_array_equal(ds.episode(0)["actions"], actions)


def test_recovers_an_episode_the_manifest_missed(tmp_path):
    rng = np.random.default_rng(2)
    with DatasetWriter(tmp_path, "Toy-v0", (8, 8, 3), SPACE) as w:
        w.add_episode(*_episode(rng, 7))
        w.add_episode(*_episode(rng, 9))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["episodes"].pop()  # as if killed between renaming the episode and rewriting the manifest
    manifest["sha256"] = manifest_digest(manifest)  # the manifest before the last episode
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "episodes" / ".tmp-123-ep_000002.npz").write_bytes(b"half written")
    with DatasetWriter(tmp_path, "Toy-v0", (8, 8, 3), SPACE) as w:
        assert w.recovered == 1 and w.episodes == 2
    assert not list((tmp_path / "episodes").glob(".tmp-*"))
    assert EpisodeDataset(tmp_path).steps == 16


def test_bad_input_errors(tmp_path):
    file = tmp_path / "a_file"
    file.write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        DatasetWriter(file, "Toy-v0", (8, 8, 3), SPACE)
    with pytest.raises(DatasetError, match="not a dreamworld dataset"):
        EpisodeDataset(tmp_path)
    with DatasetWriter(tmp_path / "d", "Toy-v0", (8, 8, 3), SPACE) as w:
        with pytest.raises(DatasetError, match="frames of shape"):
            w.add_episode(np.zeros((3, 8, 8, 3), np.uint8), [0], [0.0], [False], [False])
        with pytest.raises(DatasetError, match="another process"):
            DatasetWriter(tmp_path / "d", "Toy-v0", (8, 8, 3), SPACE)
    with pytest.raises(DatasetError, match="holds Toy-v0"):
        DatasetWriter(tmp_path / "d", "Other-v0", (8, 8, 3), SPACE)
    with pytest.raises(DatasetError, match="holds Toy-v0"):
        DatasetWriter(tmp_path / "d", "Toy-v0", (8, 8, 3), gym.spaces.Discrete(5))


def test_disk_full_leaves_stored_episodes_intact(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        rng = np.random.default_rng(3)
        with DatasetWriter(mount / "d", "Toy-v0", (32, 32, 3), SPACE) as w:
            w.add_episode(*_episode(rng, 20, (32, 32, 3)))
            with pytest.raises(DatasetError, match="disk full"):
                for _ in range(100):
                    w.add_episode(*_episode(rng, 20, (32, 32, 3)))
            stored = w.episodes
        assert not list((mount / "d" / "episodes").glob(".tmp-*"))
        ds = EpisodeDataset(mount / "d")
        assert len(ds) >= 1 and len(ds) in (stored, stored + 1)
        for i in range(len(ds)):
            assert ds.episode(i)["frames"].shape == (21, 32, 32, 3)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_sigkill_during_collect_then_continue(tmp_path):
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "dreamworld", "collect", "--env", "Catch", "--steps", "200000", "--out", str(data),
           "--policy", "random"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        manifest = data / "manifest.json"
        if manifest.exists() and len(json.loads(manifest.read_text())["episodes"]) >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ds = EpisodeDataset(data)
    assert len(ds) >= 3
    for i in range(len(ds)):  # every stored episode is whole and readable
        ep = ds.episode(i)
        assert len(ep["frames"]) == ds.episodes[i].steps + 1
    target = ds.steps + 500
    subprocess.run([*cmd[:7], str(target), *cmd[8:]], check=True, capture_output=True)
    after = EpisodeDataset(data)
    assert after.steps == target and len(after) > len(ds)
    for i in range(len(ds)):
        assert after.episodes[i] == ds.episodes[i]


def test_default_mixed_policy_plays_randomly_where_no_script_exists(tmp_path):
    """`dreamworld collect`'s default policy (mixed) records a game without a scripted policy (a classic-control
    env here, as ALE games) with random play instead of refusing it."""
    from dreamworld.cli.data import CollectArgs

    result = collect("Pendulum-v1", tmp_path / "data", 30, policy=CollectArgs.policy, progress=False, size=(16, 16))
    assert result.steps_total == 30
    assert len(EpisodeDataset(tmp_path / "data").episode(0)["actions"]) == 30


def test_dataset_repair_drops_damaged_episodes(tmp_path, capsys):
    """`dreamworld dataset DATA --repair`: a truncated and a deleted episode leave the dataset (the truncated file
    moves to DATA/damaged/), the others stay; before it, reading names the file and the repair."""
    from dreamworld.cli.data import DatasetArgs, run_dataset

    rng = np.random.default_rng(4)
    with DatasetWriter(tmp_path, "Toy-v0", (8, 8, 3), SPACE) as w:
        for steps in (3, 4, 5, 6):
            w.add_episode(*_episode(rng, steps))
    episodes = tmp_path / "episodes"
    (episodes / "ep_000001.npz").write_bytes((episodes / "ep_000001.npz").read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"ep_000001.npz is damaged .* --repair"):
        EpisodeDataset(tmp_path).episode(1)
    (episodes / "ep_000002.npz").unlink()
    with pytest.raises(DatasetError, match=r"ep_000002.npz is listed in manifest.json but missing: .* --repair"):
        EpisodeDataset(tmp_path)
    run_dataset(DatasetArgs(str(tmp_path), repair=True))
    assert "dropped 2 missing or damaged episode(s): ep_000001.npz, ep_000002.npz" in capsys.readouterr().out
    ds = EpisodeDataset(tmp_path)
    assert [e.file for e in ds.episodes] == ["ep_000000.npz", "ep_000003.npz"] and ds.steps == 3 + 6
    assert (tmp_path / "damaged" / "ep_000001.npz").exists()
