"""Episode datasets on disk: append-only, crash-safe, compressed, with random access to windows.

Layout of a dataset directory DATA/:
    manifest.json           format, env id, observation shape, action space, one entry per episode
    episodes/ep_000000.npz  one zip per episode, members compressed separately:
                            frames_000.npy, frames_001.npy, ... (chunks of `chunk_frames` uint8 frames),
                            actions.npy, rewards.npy, terminated.npy, truncated.npy
An episode of T steps stores T + 1 frames (o_0 .. o_T) and T actions, rewards and flags: step t takes
frame t and action t to frame t + 1, reward t and the flags t.

Crash safety: an episode is written to a temporary file, fsynced and renamed into place, and only then the
manifest is rewritten the same way. A kill loses at most the episode in flight; an episode file that was renamed
but not yet listed is recovered (validated and listed) when the dataset is next opened for writing.

Damage: the manifest carries a sha256 of its contents and is checked field by field; every array read from an
episode is checked against the manifest (shape, dtype; zip's CRC-32 covers the bytes). Reading damaged data
raises a DatasetError naming the file and what to do (`dreamworld dataset DATA --repair` drops damaged episodes;
a damaged manifest is rebuilt from the episode files by `dreamworld collect`), never returns wrong data.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from .spaces import action_array_spec, space_from_json

FORMAT = "dreamworld-episodes"
VERSION = 1
MANIFEST = "manifest.json"
EPISODES = "episodes"
DIGEST = "sha256"
"""Manifest key of the sha256 of the rest of the manifest (`manifest_digest`); manifests written before it have
none and are read unchecked."""
LEGACY_KEYS = {"format", "version", "env_id", "obs_shape", "action_space", "chunk_frames", "render_fps", "created",
               "episodes"}
"""The keys of manifests written before the digest: one without a digest but with another key is damaged."""
EPISODE_FILE = re.compile(r"ep_\d{6,}\.npz")
"""Names of episode files (ep_000000.npz, ...): a manifest naming anything else is damaged."""
READ_ERRORS = (Exception,)
"""What reading a truncated or changed episode file may raise: numpy and zipfile raise BadZipFile, zlib.error,
EOFError, KeyError, ValueError, but also RuntimeError (a changed flag asks for a password), NotImplementedError
(a changed compression method) and more; the reads inside these handlers call nothing else."""


class DatasetError(Exception):
    """A dataset that cannot be read or written as asked; the message says what to do."""


def check_directory(path: Path) -> None:
    """Raise when `path` exists and is not a directory."""
    if path.exists() and not path.is_dir():
        raise DatasetError(f"{path} is a file, not a dataset directory: pass a directory path (new or existing)")


@dataclass(frozen=True)
class EpisodeInfo:
    """Manifest entry for one stored episode."""

    file: str
    steps: int
    ret: float
    terminated: bool
    truncated: bool
    policy: str = ""

    def to_json(self) -> dict:
        return {"file": self.file, "steps": self.steps, "return": self.ret, "terminated": self.terminated,
                "truncated": self.truncated, "policy": self.policy}

    @staticmethod
    def from_json(d: dict) -> EpisodeInfo:
        return EpisodeInfo(d["file"], int(d["steps"]), float(d["return"]), bool(d["terminated"]),
                           bool(d["truncated"]), d.get("policy", ""))


def manifest_digest(manifest: dict) -> str:
    """sha256 (hex) of a manifest's contents other than its digest."""
    body = {k: v for k, v in manifest.items() if k != DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _rebuild_hint(path: Path, env_id: str = "ENV") -> str:
    return (f"delete it and run `dreamworld collect --env {env_id} --out {path} --steps 1`: it lists the episode "
            "files it finds there in a new manifest")


def read_manifest(path: Path) -> dict:
    """The checked manifest of the dataset at `path`, or a DatasetError saying what is wrong and what to do."""
    file = path / MANIFEST
    if not file.exists():
        if any(path.glob(f"{EPISODES}/ep_*.npz")):
            raise DatasetError(f"{path} holds episode files but no {MANIFEST}: run `dreamworld collect --env ENV "
                               f"--out {path} --steps 1` with the env they came from to list them in a new one")
        raise DatasetError(f"{path} is not a dreamworld dataset (no {MANIFEST}): create one with dreamworld collect")
    try:
        manifest = json.loads(file.read_bytes())
    except (ValueError, RecursionError) as e:
        raise DatasetError(f"{file} is not valid JSON ({e}): the dataset manifest is damaged; "
                           f"{_rebuild_hint(path)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DatasetError(f"{file} is not a {FORMAT} manifest (format={found!r}): if it was one, "
                           f"{_rebuild_hint(path)}")
    version = manifest.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise DatasetError(f"{file} has version {version!r}: the manifest is damaged; {_rebuild_hint(path)}")
    if version > VERSION:
        raise DatasetError(f"{path} has format version {manifest['version']}; this dreamworld reads up to "
                           f"{VERSION}: upgrade dreamworld")
    problem = _manifest_problem(manifest)
    if problem:
        env_id = manifest.get("env_id") if isinstance(manifest.get("env_id"), str) else "ENV"
        raise DatasetError(f"{file} is damaged ({problem}); {_rebuild_hint(path, env_id)}")
    return manifest


def _manifest_problem(m: dict) -> str | None:
    """What is wrong with a parsed manifest, or None."""
    if DIGEST in m:
        if m[DIGEST] != manifest_digest(m):
            return f"its contents no longer match the {DIGEST} digest saved in it"
    elif not set(m) <= LEGACY_KEYS:  # a changed byte in the digest's key
        return f"no {DIGEST} but keys {sorted(set(m) - LEGACY_KEYS)}"
    if not isinstance(m.get("env_id"), str):
        return f"env_id {m.get('env_id')!r} is not a string"
    shape = m.get("obs_shape")
    if not (isinstance(shape, list) and shape and all(_is_int(v) and v > 0 for v in shape)):
        return f"obs_shape {shape!r} is not a list of positive integers"
    if not (_is_int(m.get("chunk_frames")) and m["chunk_frames"] > 0):
        return f"chunk_frames {m.get('chunk_frames')!r} is not a positive integer"
    try:
        action_array_spec(space_from_json(m["action_space"]))
    except Exception as e:  # any error building the space from the JSON: a damaged space
        return f"action_space {m.get('action_space')!r} is not a space ({type(e).__name__}: {e})"
    if not isinstance(m.get("episodes"), list):
        return "it has no list of episodes"
    names = set()
    for e in m["episodes"]:
        if not (isinstance(e, dict) and isinstance(e.get("file"), str) and EPISODE_FILE.fullmatch(e["file"])
                and _is_int(e.get("steps")) and e["steps"] >= 1 and _is_number(e.get("return"))
                and isinstance(e.get("terminated"), bool) and isinstance(e.get("truncated"), bool)
                and isinstance(e.get("policy", ""), str)):
            return f"episode entry {e!r} is not one of dreamworld's"
        if e["file"] in names:
            return f"{e['file']} is listed twice"
        names.add(e["file"])
    return None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class EpisodeDataset:
    """Read access to a dataset: manifest facts, whole episodes and windows of consecutive steps.

    Windows are read chunk by chunk (only the compressed chunks a window touches are inflated), with a small
    LRU cache of inflated chunks, so a dataset larger than memory can be sampled at random.
    """

    def __init__(self, path: str | os.PathLike, cache_chunks: int = 64, check_files: bool = True,
                 manifest: dict | None = None):
        """Open the dataset at `path`; with `check_files`, refuse one whose manifest lists a missing file.
        `manifest` (checked already) stands in for the one on disk (a writer checking an episode before it lists
        it)."""
        self.path = Path(path)
        check_directory(self.path)
        self.manifest = read_manifest(self.path) if manifest is None else manifest
        self.env_id: str = self.manifest["env_id"]
        self.obs_shape: tuple[int, ...] = tuple(self.manifest["obs_shape"])
        self.action_space: gym.Space = space_from_json(self.manifest["action_space"])
        self.chunk_frames: int = int(self.manifest["chunk_frames"])
        self.episodes: list[EpisodeInfo] = [EpisodeInfo.from_json(e) for e in self.manifest["episodes"]]
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_chunks = cache_chunks
        self._action_shape, self._action_dtype = action_array_spec(self.action_space)
        for e in self.episodes if check_files else ():
            if not (self.path / EPISODES / e.file).is_file():
                raise DatasetError(f"episode file {self.path / EPISODES / e.file} is listed in {MANIFEST} but "
                                   f"missing: restore it, or {self._repair_hint()}")

    def _repair_hint(self) -> str:
        return (f"run `dreamworld dataset {self.path} --repair` to drop the missing and damaged episodes from the "
                "dataset (the others stay)")

    def _damaged(self, index: int, problem) -> DatasetError:
        file = self.path / EPISODES / self.episodes[index].file
        return DatasetError(f"episode file {file} is damaged ({problem}): restore it, or {self._repair_hint()}")

    def _array(self, z, index: int, name: str) -> np.ndarray:
        """Array `name` of episode `index` (its open zip `z`), checked against the manifest."""
        try:
            arr = z[name]
        except READ_ERRORS as e:
            raise self._damaged(index, f"{type(e).__name__}: {e}") from None
        steps = self.episodes[index].steps
        if name.startswith("frames_"):
            k = int(name[len("frames_"):])
            shape, dtype = (min(self.chunk_frames, steps + 1 - k * self.chunk_frames), *self.obs_shape), np.uint8
        elif name == "actions":
            shape, dtype = (steps, *self._action_shape), self._action_dtype
        else:
            shape, dtype = (steps,), (np.float32 if name == "rewards" else np.bool_)
        if arr.shape != shape or arr.dtype != dtype:
            raise self._damaged(index, f"{name} is {arr.dtype} {arr.shape} where the manifest says "
                                       f"{np.dtype(dtype)} {shape}")
        return arr

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def steps(self) -> int:
        """Total number of stored steps."""
        return sum(e.steps for e in self.episodes)

    def _zip(self, index: int) -> np.lib.npyio.NpzFile:
        if not 0 <= index < len(self.episodes):
            raise IndexError(f"episode {index} out of range: {self.path} holds {len(self.episodes)} episodes")
        file = self.path / EPISODES / self.episodes[index].file
        try:
            return np.load(file)  # allow_pickle=False: an object array in the file is an error, never run
        except FileNotFoundError:
            raise DatasetError(f"episode file {file} is missing: restore it, or {self._repair_hint()}") from None
        except READ_ERRORS as e:
            raise self._damaged(index, f"{type(e).__name__}: {e}") from None

    def _chunk(self, index: int, chunk: int, npz=None) -> np.ndarray:
        key = (index, chunk)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if npz is None:
            with self._zip(index) as z:
                frames = self._array(z, index, f"frames_{chunk:03d}")
        else:
            frames = self._array(npz, index, f"frames_{chunk:03d}")
        self._cache[key] = frames
        if len(self._cache) > self._cache_chunks:
            self._cache.popitem(last=False)
        return frames

    def frames(self, index: int, start: int, stop: int) -> np.ndarray:
        """Frames start..stop-1 of episode `index`: uint8 (stop - start, H, W, 3)."""
        n = self.episodes[index].steps + 1 if 0 <= index < len(self.episodes) else 0
        if not 0 <= start < stop <= n:
            raise IndexError(f"frames [{start}, {stop}) outside episode {index} with {n} frames")
        c = self.chunk_frames
        parts = [self._chunk(index, k)[max(start - k * c, 0) : stop - k * c] for k in
                 range(start // c, (stop - 1) // c + 1)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """All arrays of one episode: frames (T+1, H, W, 3), actions (T, ...), rewards, terminated, truncated."""
        with self._zip(index) as z:
            steps = self.episodes[index].steps
            chunks = [self._chunk(index, k, z) for k in range(steps // self.chunk_frames + 1)]
            out = {name: self._array(z, index, name) for name in ("actions", "rewards", "terminated", "truncated")}
        out["frames"] = np.concatenate(chunks)
        return out

    def window(self, index: int, start: int, length: int) -> dict[str, np.ndarray]:
        """Steps start..start+length-1 of episode `index`: frames (length+1, H, W, 3) and per-step arrays."""
        steps = self.episodes[index].steps if 0 <= index < len(self.episodes) else -1
        if length < 1 or start < 0 or start + length > steps:
            raise IndexError(f"window of {length} steps at {start} outside episode {index} with {steps} steps")
        with self._zip(index) as z:
            out = {name: self._array(z, index, name)[start : start + length] for name in
                   ("actions", "rewards", "terminated", "truncated")}
        out["frames"] = self.frames(index, start, start + length + 1)
        return out

    def stats(self) -> dict:
        """Counts, returns and the action histogram (Discrete) or mean/std (Box)."""
        returns = np.array([e.ret for e in self.episodes]) if self.episodes else np.zeros(1)
        lengths = np.array([e.steps for e in self.episodes]) if self.episodes else np.zeros(1)
        actions = []
        for i in range(len(self)):
            with self._zip(i) as z:
                actions.append(self._array(z, i, "actions"))
        acts = np.concatenate(actions) if actions else np.zeros(0)
        out = {"env_id": self.env_id, "episodes": len(self), "steps": self.steps,
               "return_mean": float(returns.mean()), "return_min": float(returns.min()),
               "return_max": float(returns.max()), "length_mean": float(lengths.mean()),
               "terminated": sum(e.terminated for e in self.episodes),
               "truncated": sum(e.truncated for e in self.episodes),
               "policies": {p: sum(e.policy == p for e in self.episodes) for p in {e.policy for e in self.episodes}}}
        if isinstance(self.action_space, gym.spaces.Discrete):
            counts = np.bincount(acts.astype(np.int64) - int(self.action_space.start),
                                 minlength=int(self.action_space.n))
            out["action_histogram"] = counts.tolist()
        elif acts.size:
            out["action_mean"] = acts.mean(axis=0).tolist()
            out["action_std"] = acts.std(axis=0).tolist()
        return out
