"""Files written whole or not at all, and the safetensors and JSON files of checkpoints and agents.

Every file is written to a temporary sibling, fsynced and renamed (`atomic_write`). Safetensors files carry a
digest of their tensors; configs are checked field by field against their dataclasses; weights against the model a
config builds. A leaf: datasets (`dreamworld.envs`), world-model checkpoints and agents use it, it uses none of
them. torch and safetensors are imported by the functions that read or write tensors, so datasets load without
them.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import hashlib
import json
import math
import os
import shutil
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

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


class DiskFull(OSError):
    """The disk (or quota) filled up while a file was written; the file was not replaced."""


def _fsync(path: Path) -> None:
    """fsync a file or directory by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary sibling of `path` with the same suffix (for writers that take a file name and pick the
    format by its suffix: videos, images); once the block ends it is fsynced and renamed over `path`, so `path` is
    the old file or the new one, never a part. Removed if the block raises; a full disk raises DiskFull."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DiskFull(f"disk full while writing {path}") from e
        raise


def atomic_write(path: Path, write) -> None:
    """Call `write(file)` on a temporary sibling of `path`, fsync it, rename it over `path` (`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


RENAME_EXCHANGE = 2
"""renameat2's flag that swaps two paths in one step (Linux 3.15+)."""


def _exchange(a: Path, b: Path) -> bool:
    """Swap the directories `a` and `b` in one step (Linux renameat2); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(a))


def replace_dir(new: Path, out: Path) -> None:
    """Put the complete directory `new` in the place of `out` (a directory or nothing): swapped in one step where
    the system can, so `out` is at every moment the old directory or the new one; elsewhere the old one is moved
    aside first (OUT.old, which `recover_dir` puts back after a kill in between). The old one is deleted."""
    old = out.with_name(out.name + ".old")
    if not out.exists():
        os.rename(new, out)
    elif _exchange(new, out):
        shutil.rmtree(new)
    else:
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out, old)
        os.rename(new, out)
        shutil.rmtree(old)
    _fsync(out.parent)


def recover_dir(out: Path) -> None:
    """After a kill inside `replace_dir`'s fallback: put OUT.old back when OUT is missing, else delete it."""
    old = out.with_name(out.name + ".old")
    if old.exists():
        if out.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, out)


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `tensors`, in name order (hex)."""
    import torch

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
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a checkpoint needs model.safetensors beside config.json")
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
    from safetensors.torch import save as st_save

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    data = st_save(tensors, metadata={**(metadata or {}), DIGEST: tensors_digest(tensors)})
    atomic_write(path, lambda f: f.write(data))


def write_json(path: Path, obj: dict) -> None:
    """Atomically write JSON."""
    data = json.dumps(obj, indent=1).encode()
    atomic_write(path, lambda f: f.write(data))


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
    import torch

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


