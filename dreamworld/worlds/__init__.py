"""Worlds shipped with dreamworld: one folder per world, dreamworld/worlds/NAME/, holding a world-model checkpoint
(config.json, model.safetensors in float16 or int8, starts.safetensors), metrics.json (how well it dreams, from
scripts/make_worlds.py) and optionally agent/, a policy trained in it.

`dreamworld play` opens `DEFAULT`; `dreamworld play --world NAME` another one; in Python,
`dreamworld.load(dreamworld.worlds.path("catch"))` or `gymnasium.make("dreamworld/Dream-v0",
checkpoint=dreamworld.worlds.path("catch"))`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from dreamworld import checkpoint as ckpt
from dreamworld.io import CheckpointError, read_safetensors, recover_dir, replace_dir, write_json, write_safetensors

ROOT = Path(__file__).parent
"""Where shipped worlds live (inside the installed package)."""
DEFAULT = "bricks"
"""The world `dreamworld play` opens without arguments."""
AGENT = "agent"
"""Sub-folder of a world holding its agent."""
MAX_BYTES = 10 * 1024 * 1024
"""Size cap of a shipped world (all its files)."""
AGENT_FORMAT = "dreamworld-agent"


def available() -> list[str]:
    """Names of the shipped worlds (sub-folders of ROOT holding a config.json)."""
    if not ROOT.is_dir():
        return []
    return sorted(d.name for d in ROOT.iterdir() if (d / ckpt.CONFIG).is_file())


def path(name: str | None = None) -> Path:
    """The checkpoint directory of the shipped world `name` (default: DEFAULT)."""
    name = name or DEFAULT
    world = ROOT / name
    if not (world / ckpt.CONFIG).is_file():
        names = ", ".join(available()) or "none shipped in this install"
        raise FileNotFoundError(f"no shipped world {name!r} in {ROOT} (available: {names}): pass --world with one of "
                                "the available names, or --checkpoint RUN, a run directory from dreamworld train")
    return world


def agent_path(world: str | os.PathLike) -> Path | None:
    """The agent shipped with the world in directory `world`, or None."""
    agent = Path(world) / AGENT
    return agent if (agent / ckpt.CONFIG).is_file() else None


def size_bytes(directory: str | os.PathLike) -> int:
    """Bytes of all files under `directory`."""
    return sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file())


def export_world(run: str | os.PathLike, out_dir: str | os.PathLike, dtype: str = "float16",
                 agent: str | os.PathLike | None = None, starts: int = 16) -> Path:
    """Write the world model in `run` (and the policy in `agent`) into `out_dir` for shipping: weights as `dtype`
    (float16; int8 quantizes large weights per row; float32 keeps them), the first `starts` saved start contexts,
    and the agent's weights in float16 under out_dir/agent. An existing `out_dir` is replaced. Loading casts the
    weights back to float32. Returns `out_dir`. Killed at any moment, `out_dir` holds the old world or the new one
    (the new one is written beside it, then swapped in), and running again finishes."""
    run, out_dir = Path(run), Path(out_dir)
    recover_dir(out_dir)
    ckpt.read_config(run)  # a clear error when `run` is not a world model
    config = json.loads((run / ckpt.CONFIG).read_text())
    info = {k: v for k, v in config.get("info", {}).items() if k != "data"}  # no paths of the machine it came from
    config["info"] = info | {"world": out_dir.name, "weights": dtype}
    tmp = out_dir.with_name(out_dir.name + ".exporting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_safetensors(tmp / ckpt.WEIGHTS, ckpt.compact_state(read_safetensors(run / ckpt.WEIGHTS), dtype),
                           metadata={"format": ckpt.FORMAT, "weights": dtype})
    write_json(tmp / ckpt.CONFIG, config)
    if (run / ckpt.STARTS).is_file():
        saved = read_safetensors(run / ckpt.STARTS)
        write_safetensors(tmp / ckpt.STARTS, {k: v[:starts] for k, v in saved.items()})  # (S, K, ...)
    if agent is not None:
        _export_agent(Path(agent), tmp / AGENT, "float32" if dtype == "float32" else "float16")
    replace_dir(tmp, out_dir)
    return out_dir


def _export_agent(agent: Path, out: Path, dtype: str) -> None:
    """Copy a policy (config.json + model.safetensors) with its weights as `dtype`; its world model is the world
    it ships in, so the path of the one it was trained with is dropped."""
    file = agent / ckpt.CONFIG
    if not file.is_file():
        raise CheckpointError(f"{agent} has no {ckpt.CONFIG}: pass an agent directory from dreamworld "
                                   "train-agent")
    config = json.loads(file.read_text())
    if config.get("format") != AGENT_FORMAT:
        raise CheckpointError(f"{file} is not a dreamworld agent (format={config.get('format')!r})")
    config["checkpoint"] = None
    out.mkdir(parents=True)
    write_safetensors(out / ckpt.WEIGHTS, ckpt.compact_state(read_safetensors(agent / ckpt.WEIGHTS), dtype),
                           metadata={"format": AGENT_FORMAT})
    write_json(out / ckpt.CONFIG, config)
