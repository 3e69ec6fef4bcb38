"""Long runs keep their memory flat (slow): a 10,000-frame headless play session and a 100,000-step dream on toy
checkpoints grow their resident memory by at most 20 MB after a warmup. Each prints its growth and its time."""

import gc
import os
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

MAX_GROWTH_MB = 20.0


def rss_mb() -> float:
    """This process's resident memory in MB (psutil where installed, else /proc/self/statm)."""
    gc.collect()
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_play_10000_frames_keeps_memory_flat(tmp_path):
    """A 10,000-frame headless play session (keys, rewinds, pauses, and a new start every 108 frames, as a
    player's episodes end): resident memory at frame 10,000 is within 20 MB of frame 1,000."""
    from test_play import make_run

    from dreamworld.cli.play import PlayArgs, build_app
    from dreamworld.play import PlayOptions

    run = make_run(tmp_path / "catch")
    script = "right*30,left*30,a*20,backspace*10,p,n*3,p,wait*12,return," * 100  # 108 frames an item
    app = build_app(PlayArgs(checkpoint=str(run), window=PlayOptions(fps=0, scale=2, frames=10_000, script=script)))
    marks, advance, count = {}, app._advance, [0]

    def counted():
        advance()
        count[0] += 1
        if count[0] in (1_000, 10_000):
            marks[count[0]] = rss_mb()

    app._advance = counted
    start = time.perf_counter()
    stats = app.run()
    seconds = time.perf_counter() - start
    growth = marks[10_000] - marks[1_000]
    print(f"play: {stats.frames} frames in {seconds:.1f} s ({stats.fps:.0f} fps); RSS at frame 1,000 "
          f"{marks[1_000]:.1f} MB, at 10,000 {marks[10_000]:.1f} MB (growth {growth:+.1f} MB)")
    assert stats.frames == 10_000
    assert growth <= MAX_GROWTH_MB


def test_dream_100000_steps_keeps_memory_flat(tmp_path):
    """100,000 steps of latent dreams, 16 side by side in a DreamVectorEnv (6,250 calls; episodes end with the
    dynamics' end head and at 200 steps, and restart automatically): RSS after 100,000 steps within 20 MB of RSS
    after 5,000. (One dream alone steps ~150-170 times a second on one core: 100,000 steps of it take ~10 minutes,
    too long for a test; the batch takes about one.)"""
    import numpy as np
    from test_dream_env import make_run

    from dreamworld.dream.vector_env import DreamVectorEnv

    n, steps = 16, 100_000
    run = make_run(tmp_path / "run", end_bias=0.0, frame_termination=False)
    envs = DreamVectorEnv(n, checkpoint=run, obs_type="latent", device="cpu", max_episode_steps=200)
    envs.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 3, size=(steps // n, n))
    marks, ends = {}, 0
    start = time.perf_counter()
    for i in range(steps // n):
        _, _, terminated, truncated, _ = envs.step(actions[i])
        ends += int((terminated | truncated).sum())
        if (i + 1) * n in (5_008, steps):  # 5,008: the first multiple of 16 past 5,000
            marks[(i + 1) * n] = (rss_mb(), time.perf_counter() - start)
    envs.close()
    growth = marks[steps][0] - marks[5_008][0]
    seconds = marks[steps][1]
    print(f"dream: {steps:,} steps ({n} envs) in {seconds:.1f} s ({steps / seconds:.0f} steps/s, {ends} episodes "
          f"ended); RSS after 5,008 {marks[5_008][0]:.1f} MB, after {steps:,} {marks[steps][0]:.1f} MB (growth "
          f"{growth:+.1f} MB)")
    assert ends > 100
    assert growth <= MAX_GROWTH_MB
