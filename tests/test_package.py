"""The installed package: import names, the wheel's layout, the console script."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_names():
    import dreamworld
    import dreamworld.agents
    import dreamworld.envs
    import dreamworld.kernels

    assert Path(dreamworld.envs.__file__).parent.name == "envs"
    assert Path(dreamworld.kernels.__file__).parent.name == "kernels"
    for top_level in ("envs", "agents", "kernels"):
        code = f"import importlib.util, sys; sys.path = [p for p in sys.path if p not in ('', {str(ROOT)!r})]; " \
               f"print(importlib.util.find_spec({top_level!r}))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/").stdout
        assert out.strip() == "None", f"a top-level module {top_level!r} is installed: {out}"


WORLD_FILES = ("config.json", "model.safetensors", "starts.safetensors", "metrics.json", "agent/config.json",
               "agent/model.safetensors")


def test_wheel_installs_only_under_dreamworld_and_ships_the_worlds(tmp_path):
    """Built from a copy of the sources with a stand-in world (the real ones come from scripts/make_worlds.py)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "dreamworld", "envs", "agents", "kernels"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    for file in WORLD_FILES:
        (src / "dreamworld/worlds/standin" / file).parent.mkdir(parents=True, exist_ok=True)
        (src / "dreamworld/worlds/standin" / file).write_text("{}")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(src)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(build.stderr)
    (wheel,) = tmp_path.glob("dreamworld-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"dreamworld"}
    for module in ("dreamworld/envs/__init__.py", "dreamworld/envs/games/__init__.py",
                   "dreamworld/kernels/__init__.py", "dreamworld/agents/__init__.py", "dreamworld/cli/main.py",
                   "dreamworld/worlds/__init__.py"):
        assert module in names
    for file in WORLD_FILES:
        assert f"dreamworld/worlds/standin/{file}" in names


def test_console_script_help_shows_field_docs():
    script = Path(sys.executable).parent / "dreamworld"
    out = subprocess.run([str(script), "collect", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "collect until the dataset holds this many steps" in out.stdout


def test_importing_dreamworld_registers_the_built_in_games():
    """`import dreamworld` alone makes the built-in games known to Gymnasium, so `gymnasium.make` and
    stable-baselines3's `make_vec_env` find them."""
    code = ("import dreamworld, gymnasium\n"
            "from stable_baselines3.common.env_util import make_vec_env\n"
            "env = gymnasium.make('dreamworld/Catch-v0')\n"
            "obs, _ = env.reset(seed=0)\n"
            "vec = make_vec_env('dreamworld/Bricks-v0', n_envs=2, seed=0)\n"
            "print(obs.shape, vec.reset().shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["(64,", "64,", "3)", "(2,", "64,", "64,", "3)"]


def test_the_readme_python_api_on_a_shipped_world():
    """The README's Python API on the shipped Catch world: gym.make of Dream-v0 after `import dreamworld`, then
    dreamworld.load, start from real context, step; at temperature 0 the same context gives the same frames."""
    import gymnasium as gym
    import numpy as np
    import torch

    import dreamworld
    from dreamworld import worlds

    world = str(worlds.path("catch"))
    env = gym.make("dreamworld/Dream-v0", checkpoint=world)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward)
    env.close()

    model = dreamworld.load(world)
    real = gym.make("dreamworld/Catch-v0")
    frames, actions = [real.reset(seed=0)[0]], [1, 2, 0, 1, 2, 0, 1, 2][: model.cfg.dynamics.context_frames - 1]
    frames += [real.step(a)[0] for a in actions]
    context = torch.from_numpy(np.stack(frames)[None]), torch.tensor([actions])  # (1, K, 64, 64, 3), (1, K-1)
    drawn = [model.step(model.start(*context), torch.tensor([1]), temperature=0.0) for _ in range(2)]
    (frame, rewards, ended), (again, _, _) = drawn
    assert tuple(frame.shape) == (1, 64, 64, 3) and frame.dtype == torch.uint8
    assert torch.isfinite(torch.as_tensor(rewards)).all() and torch.as_tensor(ended).dtype == torch.bool
    assert torch.equal(frame, again)
    assert (frame.float() - torch.from_numpy(frames[-1]).float()).abs().mean() < 10  # the game's screen, not noise
