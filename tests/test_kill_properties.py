"""SIGKILL at random moments (a seeded RNG draws the delay) of what writes files: `export_world`, play's F6 dataset
saves and F5 recordings, `evaluate`'s report (`write_report`) and `dreamworld loop`. Property: afterwards every file
is the old one or the new one, whole (a world directory is one export, never a mix or a part; a report file reads
back complete; a dataset opens and every episode reads), and running again finishes.

Each example is a real process killed with os.kill(pid, SIGKILL): its imports come first (it says "ready"), then it
writes in a loop, so the kill lands while it writes. A few examples each in the default run (one of the loop, about
ten seconds); more under -m slow.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from test_dream_env import make_run

from dreamworld import checkpoint as ckpt
from dreamworld.agents import ActorCritic, NetworkConfig, Policy
from dreamworld.envs import EpisodeDataset
from dreamworld.io import read_safetensors
from dreamworld.worlds import export_world

pytestmark = pytest.mark.usefixtures("one_thread")

KILLS = {"export": [pytest.param(2, id="2"), pytest.param(10, id="10", marks=pytest.mark.slow)],
         "play": [pytest.param(1, id="1"), pytest.param(5, id="5", marks=pytest.mark.slow)],
         "report": [pytest.param(2, id="2"), pytest.param(8, id="8", marks=pytest.mark.slow)]}
"""Kills per property: a few in the default run, more with -m slow."""

ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")


def _start(code: str, *args) -> subprocess.Popen:
    """A python process running `code` with `args` (stderr to a file, so a full pipe never stalls it); returns
    once it printed "ready" (its imports are done)."""
    stderr = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, stderr=stderr,
                            text=True, env=ENV)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.wait(timeout=30)
        stderr.seek(0)
        pytest.fail(f"the process did not start: {line!r} {stderr.read()[-3000:]}")
    stderr.close()
    return proc


def _kill_after(proc: subprocess.Popen, delay: float) -> bool:
    """SIGKILL `proc` after `delay` seconds; whether it was still running then (the kill counted)."""
    time.sleep(delay)
    running = proc.poll() is None
    if running:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()
    return running


# -- export_world ---------------------------------------------------------------------------------------------------

EXPORT = """
import itertools, sys
from dreamworld.worlds import export_world
run, out, agent = sys.argv[1:4]
print("ready", flush=True)
for dtype in itertools.cycle(["float16", "int8"]):
    export_world(run, out, dtype=dtype, agent=agent, starts=2)
"""


@pytest.fixture(scope="module")
def world_sources(tmp_path_factory):
    """A toy world model with start contexts, a toy agent, and the three exports of them a world directory may
    hold: float32 (the old one), float16 and int8 (the new ones the killed process writes in turn)."""
    root = tmp_path_factory.mktemp("export")
    run = make_run(root / "run")
    net = ActorCritic(gym.spaces.Box(-1, 1, (16, 3), np.float32), gym.spaces.Discrete(3),
                      NetworkConfig(hidden=16, token_width=8))
    agent = Policy(net, "latent", "Toy-v0").save(root / "agent")
    refs = {dtype: export_world(run, root / dtype / "toy", dtype=dtype, agent=agent, starts=2)  # named as the test's
            for dtype in ("float32", "float16", "int8")}
    return run, agent, refs


def _world_version(world: Path, refs: dict) -> str:
    """Which export `world` is, checked whole: the same files as that export, each read back equal to it."""
    config = json.loads((world / ckpt.CONFIG).read_text())
    version = config["info"]["weights"]
    ref = refs[version]
    files = sorted(str(p.relative_to(world)) for p in world.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file()), (version, files)
    for name in files:
        if name.endswith(".json"):
            assert json.loads((world / name).read_text()) == json.loads((ref / name).read_text()), name
        else:
            got, want = read_safetensors(world / name), read_safetensors(ref / name)  # digests checked
            assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got), name
    return version


@pytest.mark.parametrize("kills", KILLS["export"])
def test_export_world_killed_leaves_the_old_or_the_new_world(world_sources, tmp_path, kills):
    """Killed while it replaces a shipped world again and again, export_world leaves the world directory as one
    whole export (the old float32 one or a new one), and running it again finishes with the new one."""
    run, agent, refs = world_sources
    out = tmp_path / "worlds" / "toy"
    export_world(run, out, dtype="float32", agent=agent, starts=2)  # the old world
    rng, seen, counted = random.Random(0), set(), 0
    for _ in range(kills):
        proc = _start(EXPORT, run, out, agent)
        counted += _kill_after(proc, rng.uniform(0.0, 1.5))
        # where the system cannot swap directories in one step, a kill between the two renames leaves the old
        # world whole as toy.old, which the next export (recover_dir) puts back
        world = out if out.exists() else out.with_name("toy.old")
        seen.add(_world_version(world, refs))
        assert ckpt.load(world).cfg.env_id == "Toy-v0"
    assert counted == kills  # every process was killed while it wrote
    export_world(run, out, dtype="float16", agent=agent, starts=2)  # a rerun finishes
    assert _world_version(out, refs) == "float16"
    assert sorted(p.name for p in out.parent.iterdir()) == ["toy"]  # no .exporting or .old left over
    print(f"world versions found after the kills: {sorted(seen)}")


# -- play: F6 saves and F5 recordings -------------------------------------------------------------------------------

PLAY = """
import sys
from dreamworld.cli.play import PlayArgs, build_app
from dreamworld.play import PlayOptions
run, save_to, recordings, repeats = sys.argv[1:5]
script = "right*3,f6,f5,left*4,f5,space*2,f6," * int(repeats)
app = build_app(PlayArgs(checkpoint=run, window=PlayOptions(fps=0, scale=1, record_scale=1, script=script,
                                                            recordings=recordings, save_to=save_to)))
print("ready", flush=True)
app.run()
"""


def _check_played(save_to: Path, recordings: Path) -> int:
    """Every saved episode reads back and every recording (not a temporary) reads whole; the episodes saved."""
    episodes = 0
    if (save_to / "manifest.json").exists():
        ds = EpisodeDataset(save_to)
        for i in range(len(ds)):
            assert len(ds.episode(i)["frames"]) == ds.episodes[i].steps + 1
        episodes = len(ds)
    for video in sorted(recordings.glob("*")) if recordings.exists() else []:
        if not video.name.startswith(".tmp-"):
            frames = iio.imread(video, index=None)
            assert frames.ndim == 4 and len(frames) >= 1 and frames.shape[-1] in (3, 4), (video, frames.shape)
    return episodes


@pytest.mark.parametrize("kills", KILLS["play"])
def test_play_killed_while_saving_and_recording(tmp_path, kills):
    """Killed while F6 saves episodes and F5 writes recordings, play leaves a dataset that opens with every
    episode whole and recordings that read whole; playing again finishes and adds its episodes."""
    from test_play import make_run as make_play_run

    run = make_play_run(tmp_path / "catch")
    save_to, recordings = tmp_path / "played", tmp_path / "rec"
    rng = random.Random(1)
    for _ in range(kills):
        assert _kill_after(_start(PLAY, run, save_to, recordings, 200), rng.uniform(0.2, 3.0))
        _check_played(save_to, recordings)
    before = _check_played(save_to, recordings)
    done = subprocess.run([sys.executable, "-c", PLAY, str(run), str(save_to), str(recordings), "1"],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _check_played(save_to, recordings) == before + 2  # the rerun's two F6 saves


# -- evaluate's report ----------------------------------------------------------------------------------------------

REPORT = """
import json, sys
import numpy as np
from dreamworld.evaluate.fidelity import write_report
import matplotlib.pyplot
out, src = sys.argv[1:3]
versions = [(json.loads(open(f"{src}/metrics_{v}.json").read()), dict(np.load(f"{src}/examples_{v}.npz")))
            for v in "ab"]
print("ready", flush=True)
while True:
    for metrics, examples in versions[::-1]:
        write_report(out, metrics, examples, 15)
"""


def _report_versions(src: Path) -> dict:
    """Two reports' contents (metrics, examples) that differ in every file, saved for the writing process."""
    rng = np.random.default_rng(0)
    versions = {}
    for v, level in (("a", 20.0), ("b", 30.0)):
        metrics = {"version": v, "episodes": 3, "rollouts": 2,
                   "curves": {"psnr": [level + i for i in range(6)], "baseline_psnr": [level - i for i in range(6)]}}
        examples = {k: rng.integers(0, 256, (2, 6, 16, 16, 3), dtype=np.uint8) for k in ("real", "imagined")}
        (src / f"metrics_{v}.json").write_text(json.dumps(metrics))
        np.savez(src / f"examples_{v}.npz", **examples)
        versions[v] = (metrics, examples)
    return versions


def _check_report(out: Path) -> str:
    """Every report file reads whole; the version metrics.json holds."""
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["version"] in ("a", "b")
    assert iio.imread(out / "psnr.png").ndim == 3
    assert len(iio.imread(out / "rollout.gif", index=None)) == 12  # 2 rollouts x 6 steps
    assert len(iio.imread(out / "rollout.mp4")) == 12
    return metrics["version"]


@pytest.mark.parametrize("kills", KILLS["report"])
def test_report_killed_while_written(tmp_path, kills):
    """Killed while it rewrites a report again and again, evaluate's write_report leaves metrics.json, psnr.png,
    rollout.mp4 and rollout.gif each the old file or the new one, whole; writing again finishes."""
    from dreamworld.evaluate.fidelity import write_report

    src, out = tmp_path / "src", tmp_path / "report"
    src.mkdir()
    versions = _report_versions(src)
    write_report(out, *versions["a"], 15)  # the old report
    rng = random.Random(2)
    for _ in range(kills):
        assert _kill_after(_start(REPORT, out, src), rng.uniform(0.0, 2.0))
        _check_report(out)
    write_report(out, *versions["b"], 15)
    assert _check_report(out) == "b"


# -- dreamworld loop (slow: a toy loop takes about ten seconds; a kill and a rerun) ----------------------------------

@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_loop_killed_at_a_random_moment_resumes(tmp_path, seed):
    """Killed at a random moment, the loop leaves loop.json, the dataset, the world model and the agent each
    readable, and running it again finishes the loop as if it had not been killed."""
    from test_loop import _check_finished, _loop

    from dreamworld.agents import load

    out = tmp_path / "loop"
    cmd = _loop(out, 160, 80, "--final-episodes", "0")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    assert _kill_after(proc, random.Random(seed).uniform(1.0, 6.0))
    if (out / "loop.json").exists():
        json.loads((out / "loop.json").read_text())
    if (out / "data" / "manifest.json").exists():
        ds = EpisodeDataset(out / "data")
        for i in range(len(ds)):
            ds.episode(i)
    if (out / "world_model" / ckpt.TRAIN_STATE).exists():
        ckpt.load(out / "world_model")
    if (out / "agent" / ckpt.CONFIG).exists():
        load(out / "agent")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_finished(out, 160, 2)


def test_export_swaps_whole_directories(tmp_path):
    """replace_dir puts a new directory in the place of an old one; recover_dir puts back an old one moved aside
    by a process killed in between (where the system cannot swap in one step)."""
    from dreamworld.io import recover_dir, replace_dir

    old, new = tmp_path / "world", tmp_path / "world.exporting"
    old.mkdir()
    (old / "a").write_text("old")
    new.mkdir()
    (new / "a").write_text("new")
    replace_dir(new, old)
    assert (old / "a").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["world"]
    os.rename(old, tmp_path / "world.old")  # killed after moving the old one aside
    recover_dir(old)
    assert (old / "a").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["world"]
