"""The installed package: import names, the wheel's layout, the console script."""

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


def test_wheel_installs_only_under_dreamworld(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(build.stderr)
    (wheel,) = tmp_path.glob("dreamworld-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"dreamworld"}
    for module in ("dreamworld/envs/__init__.py", "dreamworld/envs/games/__init__.py",
                   "dreamworld/kernels/__init__.py", "dreamworld/agents/__init__.py", "dreamworld/cli.py"):
        assert module in names


def test_console_script_help_shows_field_docs():
    script = Path(sys.executable).parent / "dreamworld"
    out = subprocess.run([str(script), "collect", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "collect until the dataset holds this many steps" in out.stdout
