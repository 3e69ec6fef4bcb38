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

import dataclasses
import hashlib
import io
import json
import math
import os
import pickle
import types
import typing
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


DIGEST = "sha256"
"""Metadata key under which a safetensors file keeps the digest of its tensors (`tensors_digest`); reading checks
it. Files written before it existed have none and are read unchecked."""
LEGACY_METADATA = {"format", "weights"}
"""The metadata keys of files written before the digest: a file without a digest but with another key had a byte of
the digest's key changed."""


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message says why and what to do."""


def run_file(run: str | os.PathLike, name: str) -> Path:
    """`run / name`, refused when it is a symbolic link to a place outside `run` (a checkpoint's files live in
    its directory: a link out of it could make loading read anything on the machine)."""
    run = Path(run)
    file = run / name
    if file.is_symlink():
        target = file.resolve()
        if not target.is_relative_to(run.resolve()):
            raise CheckpointError(f"{file} is a symbolic link to {target}, outside {run}: dreamworld reads a "
                                  "checkpoint's files from inside its directory only; copy the file there")
    return file


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `tensors`, in name order (hex)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _safetensors_metadata(data: bytes) -> dict:
    """The `__metadata__` of a safetensors file that safetensors has parsed (so its header is valid)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]).get("__metadata__") or {}


def _looks_pickled(data: bytes) -> bool:
    """Pickle streams start with the PROTO opcode 0x80; torch.save files are zip archives ("PK\x03\x04")."""
    return data[:1] == b"\x80" or data[:4] == b"PK\x03\x04"


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, refusing pickles and truncated files with a clear error."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a world-model checkpoint needs {WEIGHTS} beside {CONFIG}")
    data = path.read_bytes()
    try:
        tensors = st_load(data)  # parses a header and copies tensors: no code in the file can run
        metadata = _safetensors_metadata(data)
    except (SafetensorError, ValueError, RuntimeError, UnicodeDecodeError, OverflowError) as e:
        if _looks_pickled(data):
            raise CheckpointError(f"{path} is a pickle / torch.save file, not safetensors: dreamworld never loads "
                                  "pickles (they can run code); convert the weights to safetensors") from None
        raise CheckpointError(f"{path} is not a valid safetensors file ({e}): it may be truncated; "
                              "train again or restore it") from None
    if DIGEST not in metadata and not set(metadata) <= LEGACY_METADATA:  # a changed byte in the digest's key
        raise CheckpointError(f"{path} is damaged: its metadata has keys {sorted(metadata)} but no {DIGEST}; "
                              "restore it from a copy or train again")
    if DIGEST in metadata and tensors_digest(tensors) != metadata[DIGEST]:
        raise CheckpointError(f"{path} is damaged: its tensors no longer match the {DIGEST} digest saved in it "
                              "(changed bytes); restore it from a copy or train again")
    return tensors


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Atomically write tensors (made contiguous, on CPU) as safetensors, with their digest in the metadata."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    data = st_save(tensors, metadata={**(metadata or {}), DIGEST: tensors_digest(tensors)})
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
    file = run_file(file.parent, file.name)
    if not file.is_file():
        raise CheckpointError(f"{file.parent} has no {file.name}: {missing_hint}")
    try:
        data = json.loads(file.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{file} is not valid JSON ({e}): the {kind} is damaged") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise CheckpointError(f"{file} is not a dreamworld {kind} config (format="
                              f"{data.get('format') if isinstance(data, dict) else None!r})")
    found = data.get("version", 0)
    if not isinstance(found, int) or isinstance(found, bool) or found < 0:
        raise CheckpointError(f"{file} has version {found!r}, not a number: the {kind} is damaged")
    if found > version:
        raise CheckpointError(f"{file} has version {found}; this dreamworld reads {kind} configs up to {version}")
    return data


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_fields(cls, data, file: Path, where: str = "config") -> None:
    """Raise a CheckpointError naming `file` and the field unless `data` (a config's JSON) holds only fields of the
    dataclass `cls` (or its nested dataclasses), each of its annotated type: ints are ints, floats finite numbers,
    lists lists of their items, a Literal one of its values. Missing fields take their defaults (configs of older
    versions lack fields added since)."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: {where} must be a JSON object, got {data!r}: the file is damaged")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in names:
            raise CheckpointError(f"{file}: {where} has an unknown field {key!r} (a {cls.__name__} has "
                                  f"{', '.join(sorted(names))}): the file is from another program or damaged")
        if not _fits(hints[key], value, file, f"{where}.{key}"):
            raise CheckpointError(f"{file}: {where}.{key} must be {_type_name(hints[key])}, got {value!r}: the file "
                                  "is damaged or was edited by hand")


def _fits(hint, value, file: Path, where: str) -> bool:
    """Whether the JSON `value` is of the type `hint` (nested dataclasses are checked by `check_fields`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        check_fields(hint, value, file, where)
        return True
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return type(None) in args
        return any(_fits(arg, value, file, where) for arg in args if arg is not type(None))
    if origin is typing.Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if origin is list:
        return isinstance(value, list) and all(_fits(args[0], v, file, where) for v in value)
    if origin is tuple:
        return (isinstance(value, list) and len(value) == len(args)
                and all(_fits(a, v, file, where) for a, v in zip(args, value, strict=True)))
    return True  # a type configs do not use: nothing to check


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


def build(make, cfg, file: Path):
    """`make(cfg)` (a model class or function), or a CheckpointError naming `file` (the config) and what cannot be
    built."""
    try:
        return make(cfg)
    except Exception as e:  # any error building from a config read off disk means a config that cannot be built
        raise CheckpointError(f"{file} holds a config this dreamworld cannot build ({type(e).__name__}: {e}): the "
                              "file is damaged or from another version") from None


def check_state(file: Path, state: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> None:
    """Raise a CheckpointError naming `file` unless `state` has exactly the names of `like` (a model's state
    dict), each of the same shape, floating where the model's is, and finite."""
    missing, unexpected = set(like) - set(state), set(state) - set(like)
    if missing or unexpected:
        raise CheckpointError(f"{file} does not match its config: missing {sorted(missing)[:5]}, unexpected "
                              f"{sorted(unexpected)[:5]}; the weights belong to another model")
    for name, t in state.items():
        if t.shape != like[name].shape or t.is_floating_point() != like[name].is_floating_point():
            raise CheckpointError(f"{file} does not match its config: {name} is {t.dtype} {tuple(t.shape)} in the "
                                  f"file, {like[name].dtype} {tuple(like[name].shape)} in the model the config builds")
        # a sum is NaN or infinite where a value is (and, rarely, where finite values overflow it: look again)
        if t.is_floating_point() and not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
            raise CheckpointError(f"{file} holds NaN or infinite values in {name}: training diverged or the file "
                                  "is damaged; use an earlier checkpoint")


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
