"""Checkpoint directories: config.json + model.safetensors (+ starts.safetensors, + train_state.pt for resume).

Weights are never pickled. Every file is written to a temporary name, fsynced and renamed. The training state
is a torch file loaded with `weights_only=True` (tensors and plain containers only), and only for resume.
Loading refuses, with a message naming the file and the problem, anything missing, truncated, pickled, foreign or
damaged: safetensors files carry a digest of their tensors (a flipped bit is found), configs are checked field by
field against their dataclasses, weights against the model the config builds (names, shapes, dtypes, finite
values), and a file that is a symbolic link out of its directory is not read. A model is returned whole or not
at all.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from dreamworld.envs.dataset import EpisodeDataset
from dreamworld.io import (
    CheckpointError,
    atomic_write,
    build,
    check_fields,
    check_state,
    read_config_json,
    read_safetensors,
    run_file,
    write_json,
    write_safetensors,
)
from dreamworld.model.world_model import WorldModel, WorldModelConfig

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


def read_config(run: str | os.PathLike) -> tuple[WorldModelConfig, dict]:
    """The model config and the info saved beside it."""
    run = Path(run)
    if not run.exists():
        raise CheckpointError(f"checkpoint directory {run} does not exist: train one with dreamworld train")
    if not run.is_dir():
        raise CheckpointError(f"{run} is a file: pass a checkpoint directory holding {CONFIG} and {WEIGHTS}")
    file = run / CONFIG
    data = read_config_json(file, FORMAT, VERSION, "world-model", "not a dreamworld checkpoint directory")
    if "config" not in data:
        raise CheckpointError(f"{file} has no 'config': the file is damaged")
    check_fields(WorldModelConfig, data["config"], file)
    try:
        cfg = WorldModelConfig.from_dict(data["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{file} holds a config this dreamworld cannot build ({e})") from None
    if list(cfg.obs_shape) != [cfg.tokenizer.image_size, cfg.tokenizer.image_size, 3]:
        raise CheckpointError(f"{file}: obs_shape {cfg.obs_shape} does not fit the tokenizer's "
                              f"{cfg.tokenizer.image_size}x{cfg.tokenizer.image_size} RGB frames: the file is damaged")
    return cfg, data.get("info", {})


def load(run: str | os.PathLike, device: str | torch.device = "cpu") -> WorldModel:
    """Load the world model in `run`, in eval mode, on `device`, ready to imagine; weights stored as float16 or
    int8 (shipped worlds) are cast back to the model's float32."""
    cfg, _ = read_config(run)
    stored = read_safetensors(run_file(run, WEIGHTS))
    model = build(WorldModel, cfg, Path(run) / CONFIG)
    state = expand_state(stored, model.state_dict())  # fp16 / int8 -> fp32
    check_state(Path(run) / WEIGHTS, state, model.state_dict())
    model.load_state_dict(state)
    return model.to(device).eval()


def save_train_state(run: str | os.PathLike, state: dict) -> None:
    """Atomically write the resume state (tensors, numbers, strings, containers only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(Path(run) / TRAIN_STATE, lambda f: f.write(buffer.getvalue()))


def load_train_state(run: str | os.PathLike) -> dict:
    """Read the resume state with `weights_only=True`: nothing in it can run code."""
    path = run_file(run, TRAIN_STATE)
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
