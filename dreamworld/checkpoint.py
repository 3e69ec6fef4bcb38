"""Checkpoint directories: config.json + model.safetensors (+ starts.safetensors, + train_state.pt for resume).

Weights are never pickled. Every file is written to a temporary name, fsynced and renamed. The training state
is a torch file loaded with `weights_only=True` (tensors and plain containers only), and only for resume.
Loading refuses, with a message naming the problem, anything missing, truncated, pickled or foreign.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from dreamworld.envs.dataset import EpisodeDataset, atomic_write

from .world_model import WorldModel, WorldModelConfig

FORMAT = "dreamworld-world-model"
VERSION = 1
CONFIG, WEIGHTS, STARTS, TRAIN_STATE = "config.json", "model.safetensors", "starts.safetensors", "train_state.pt"


WEIGHT_DTYPES = ("float32", "float16", "int8")
"""How weights can be stored: float32 (training), float16, or int8 (large matrices and kernels quantized per
output row with a float16 scale, the rest float16). Loading always gives the model's own dtype (float32)."""
INT8_SCALE = ":int8_scale"
"""Suffix of the per-row scale stored beside an int8 weight (':' never occurs in a parameter's name)."""
INT8_MIN_SIZE = 4096
"""Weights with fewer values stay float16 under int8 (biases, norms, small heads)."""


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message says why and what to do."""


def _looks_pickled(data: bytes) -> bool:
    """Pickle streams start with the PROTO opcode 0x80; torch.save files are zip archives ("PK\x03\x04")."""
    return data[:1] == b"\x80" or data[:4] == b"PK\x03\x04"


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, refusing pickles and truncated files with a clear error."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a world-model checkpoint needs {WEIGHTS} beside {CONFIG}")
    data = path.read_bytes()
    try:
        return st_load(data)  # parses a header and copies tensors: no code in the file can run
    except (SafetensorError, ValueError, RuntimeError) as e:
        if _looks_pickled(data):
            raise CheckpointError(f"{path} is a pickle / torch.save file, not safetensors: dreamworld never loads "
                                  "pickles (they can run code); convert the weights to safetensors") from None
        raise CheckpointError(f"{path} is not a valid safetensors file ({e}): it may be truncated; "
                              "train again or restore it") from None


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Atomically write tensors (made contiguous, on CPU) as safetensors."""
    data = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    atomic_write(path, lambda f: f.write(data))


def write_json(path: Path, obj: dict) -> None:
    """Atomically write JSON."""
    data = json.dumps(obj, indent=1).encode()
    atomic_write(path, lambda f: f.write(data))


def compact_state(state: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """`state` with its floating tensors stored as `dtype` (one of WEIGHT_DTYPES); other tensors unchanged."""
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights can be stored as {', '.join(WEIGHT_DTYPES)}, not {dtype!r}")
    out = {}
    for name, t in state.items():
        t = t.detach().cpu()
        if not t.is_floating_point() or dtype == "float32":
            out[name] = t
        elif dtype == "int8" and t.ndim >= 2 and t.numel() >= INT8_MIN_SIZE:
            rows = t.float().flatten(1)  # (out_features, everything else)
            scale = (rows.abs().amax(1, keepdim=True) / 127).half()  # (out_features, 1)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # rows of zeros (or below fp16's range)
            out[name] = (rows / scale.float()).round().clamp(-127, 127).to(torch.int8).view_as(t)
            out[name + INT8_SCALE] = scale
        else:
            out[name] = t.half()
    return out


def expand_state(state: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `compact_state`: int8 weights times their scales, and every floating tensor cast to the dtype
    of the tensor of the same name in `like` (a model's state dict)."""
    out = {}
    for name, t in state.items():
        if name.endswith(INT8_SCALE):
            continue
        if t.dtype == torch.int8 and name + INT8_SCALE in state:
            t = (t.flatten(1).float() * state[name + INT8_SCALE].float()).view(t.shape)  # rows times scales
        if name in like and t.is_floating_point() and like[name].is_floating_point():
            t = t.to(like[name].dtype)
        out[name] = t
    return out


def save_model(run: str | os.PathLike, model: WorldModel, info: dict | None = None) -> None:
    """Write config.json (+ `info`, e.g. training summary) and model.safetensors into `run`."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    write_safetensors(run / WEIGHTS, model.state_dict(), metadata={"format": FORMAT})
    write_json(run / CONFIG, {"format": FORMAT, "version": VERSION, "config": model.cfg.to_dict(),
                              "info": info or {}})


def read_config_json(file: Path, fmt: str, version: int, kind: str, missing_hint: str) -> dict:
    """The JSON object in `file` (a world model's or an agent's config.json), checked to carry `"format": fmt`
    and a version no newer than `version`; a clear CheckpointError otherwise (`missing_hint` ends the message
    for a missing file)."""
    if not file.is_file():
        raise CheckpointError(f"{file.parent} has no {file.name}: {missing_hint}")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON ({e}): the {kind} is damaged") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise CheckpointError(f"{file} is not a dreamworld {kind} config (format="
                              f"{data.get('format') if isinstance(data, dict) else None!r})")
    if data.get("version", 0) > version:
        raise CheckpointError(f"{file} has version {data['version']}; this dreamworld reads {kind} configs up to "
                              f"{version}")
    return data


def read_config(run: str | os.PathLike) -> tuple[WorldModelConfig, dict]:
    """The model config and the info saved beside it."""
    run = Path(run)
    if not run.exists():
        raise CheckpointError(f"checkpoint directory {run} does not exist: train one with dreamworld train")
    if not run.is_dir():
        raise CheckpointError(f"{run} is a file: pass a checkpoint directory holding {CONFIG} and {WEIGHTS}")
    file = run / CONFIG
    data = read_config_json(file, FORMAT, VERSION, "world-model", "not a dreamworld checkpoint directory")
    try:
        return WorldModelConfig.from_dict(data["config"]), data.get("info", {})
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{file} holds a config this dreamworld cannot build ({e})") from None


def load(run: str | os.PathLike, device: str | torch.device = "cpu") -> WorldModel:
    """Load the world model in `run`, in eval mode, on `device`, ready to imagine; weights stored as float16 or
    int8 (shipped worlds) are cast back to the model's float32."""
    cfg, _ = read_config(run)
    model = WorldModel(cfg)
    state = expand_state(read_safetensors(Path(run) / WEIGHTS), model.state_dict())  # fp16 / int8 -> fp32
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise CheckpointError(f"{Path(run) / WEIGHTS} does not match its config: missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]}; the weights belong to another model")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{Path(run) / WEIGHTS} does not match its config ({e})") from None
    return model.to(device).eval()


def save_train_state(run: str | os.PathLike, state: dict) -> None:
    """Atomically write the resume state (tensors, numbers, strings, containers only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(Path(run) / TRAIN_STATE, lambda f: f.write(buffer.getvalue()))


def load_train_state(run: str | os.PathLike) -> dict:
    """Read the resume state with `weights_only=True`: nothing in it can run code."""
    path = Path(run) / TRAIN_STATE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: nothing to resume; start without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be loaded safely ({str(e).splitlines()[0]}): it is damaged or "
                              "holds objects other than tensors; start training again without --resume") from None


def save_starts(out: Path, ds: EpisodeDataset, episodes: list[int], context: int, count: int = 32) -> None:
    """Save real start contexts (the first `context` frames and actions of some episodes) with the checkpoint,
    so a dream can reset without its dataset."""
    picks = [i for i in episodes if ds.episodes[i].steps >= context][:count]
    if not picks:
        return
    windows = [ds.window(i, 0, context - 1) for i in picks]
    write_safetensors(out / STARTS, {
        "frames": torch.from_numpy(np.stack([w["frames"] for w in windows])),  # (S, K, H, W, 3)
        "actions": torch.from_numpy(np.stack([w["actions"] for w in windows]))})  # (S, K-1, ...)
