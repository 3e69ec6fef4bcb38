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
"""

from __future__ import annotations

import errno
import json
import os
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from .spaces import space_from_json

FORMAT = "dreamworld-episodes"
VERSION = 1
MANIFEST = "manifest.json"
EPISODES = "episodes"


class DatasetError(Exception):
    """A dataset that cannot be read or written as asked; the message says what to do."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Call `write(file)` on a temporary sibling of `path`, fsync it, rename it over `path`."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DatasetError(
                f"disk full while writing {path}: the episodes already stored are intact; "
                "free some space and run the same command again to continue"
            ) from e
        raise


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


def read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not file.exists():
        raise DatasetError(f"{path} is not a dreamworld dataset (no {MANIFEST}): create one with dreamworld collect")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{file} is not valid JSON ({e}): the dataset manifest is damaged") from None
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"{file} is not a {FORMAT} manifest (format={manifest.get('format')!r})")
    if manifest.get("version", 0) > VERSION:
        raise DatasetError(f"{path} has format version {manifest['version']}; this dreamworld reads up to "
                           f"{VERSION}: upgrade dreamworld")
    return manifest


class EpisodeDataset:
    """Read access to a dataset: manifest facts, whole episodes and windows of consecutive steps.

    Windows are read chunk by chunk (only the compressed chunks a window touches are inflated), with a small
    LRU cache of inflated chunks, so a dataset larger than memory can be sampled at random.
    """

    def __init__(self, path: str | os.PathLike, cache_chunks: int = 64):
        self.path = Path(path)
        check_directory(self.path)
        self.manifest = read_manifest(self.path)
        self.env_id: str = self.manifest["env_id"]
        self.obs_shape: tuple[int, ...] = tuple(self.manifest["obs_shape"])
        self.action_space: gym.Space = space_from_json(self.manifest["action_space"])
        self.chunk_frames: int = int(self.manifest["chunk_frames"])
        self.episodes: list[EpisodeInfo] = [EpisodeInfo.from_json(e) for e in self.manifest["episodes"]]
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_chunks = cache_chunks

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
            return np.load(file)
        except (OSError, zipfile.BadZipFile, ValueError) as e:
            raise DatasetError(f"episode file {file} is unreadable ({e})") from None

    def _chunk(self, index: int, chunk: int, npz=None) -> np.ndarray:
        key = (index, chunk)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if npz is None:
            with self._zip(index) as z:
                frames = z[f"frames_{chunk:03d}"]
        else:
            frames = npz[f"frames_{chunk:03d}"]
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
            out = {name: z[name] for name in ("actions", "rewards", "terminated", "truncated")}
        out["frames"] = np.concatenate(chunks)
        return out

    def window(self, index: int, start: int, length: int) -> dict[str, np.ndarray]:
        """Steps start..start+length-1 of episode `index`: frames (length+1, H, W, 3) and per-step arrays."""
        steps = self.episodes[index].steps if 0 <= index < len(self.episodes) else -1
        if length < 1 or start < 0 or start + length > steps:
            raise IndexError(f"window of {length} steps at {start} outside episode {index} with {steps} steps")
        with self._zip(index) as z:
            out = {name: z[name][start : start + length] for name in
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
                actions.append(z["actions"])
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
