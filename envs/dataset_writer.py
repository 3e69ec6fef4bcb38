"""Appending episodes to a dataset directory (see `dataset.py` for the layout and the crash-safety rules)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from dreamworld.io import DiskFull, atomic_write

from .dataset import (
    DIGEST,
    EPISODE_FILE,
    EPISODES,
    FORMAT,
    MANIFEST,
    READ_ERRORS,
    VERSION,
    DatasetError,
    EpisodeDataset,
    EpisodeInfo,
    check_directory,
    manifest_digest,
    read_manifest,
)
from .spaces import action_array_spec, space_from_json, space_to_json


def _episode_info(file: Path, npz) -> EpisodeInfo:
    terminated, truncated = npz["terminated"], npz["truncated"]
    return EpisodeInfo(file.name, int(len(npz["actions"])), float(npz["rewards"].sum()),
                       bool(terminated[-1]) if len(terminated) else False,
                       bool(truncated[-1]) if len(truncated) else False, str(npz["policy"]))


DAMAGED = "damaged"
"""Folder of a dataset where `repair` moves the episode files it drops."""


def _index(name: str) -> int:
    return int(name[3:-4])  # ep_000123.npz -> 123


class DatasetWriter:
    """Appends whole episodes to DATA; creates DATA if new, continues it if it holds the same env.

    One writer per dataset at a time (a lock file enforces it). Use as a context manager. With `repair`, episode
    files that are unreadable (listed or not) move to DATA/damaged/ and leave the manifest, instead of stopping it.
    """

    def __init__(self, path: str | os.PathLike, env_id: str, obs_shape: tuple[int, ...],
                 action_space: gym.Space, chunk_frames: int = 64, render_fps: int | None = None,
                 repair: bool = False):
        self.path = Path(path)
        check_directory(self.path)
        try:
            (self.path / EPISODES).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatasetError(f"cannot create dataset directory {self.path}: {e}") from None
        self._lock = open(self.path / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise DatasetError(f"{self.path} is being written by another process: wait for it to finish") from None
        self.action_space = action_space
        self._action_shape, self._action_dtype = action_array_spec(action_space)
        if (self.path / MANIFEST).exists():
            self.manifest = read_manifest(self.path)
            self._check_same_env(env_id, obs_shape, action_space)
        else:
            self.manifest = {"format": FORMAT, "version": VERSION, "env_id": env_id, "obs_shape": list(obs_shape),
                             "action_space": space_to_json(action_space), "chunk_frames": int(chunk_frames),
                             "render_fps": render_fps, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                             "episodes": []}
            self._write_manifest()
        self.obs_shape = tuple(self.manifest["obs_shape"])
        self.chunk_frames = int(self.manifest["chunk_frames"])
        self.dropped: list[str] = []
        """episode files `repair` moved to DATA/damaged/"""
        self.recovered = self._recover(repair)
        if repair:
            self._drop_damaged()
        names = [e["file"] for e in self.manifest["episodes"]]
        names += [f.name for folder in (EPISODES, DAMAGED) for f in (self.path / folder).glob("ep_*.npz")
                  if EPISODE_FILE.fullmatch(f.name)]
        self._next = max(map(_index, names), default=-1) + 1  # never the name of a file there, listed or not

    def _check_same_env(self, env_id: str, obs_shape, action_space: gym.Space) -> None:
        m = self.manifest
        stored_space = space_from_json(m["action_space"])
        if m["env_id"] != env_id or tuple(m["obs_shape"]) != tuple(obs_shape) or stored_space != action_space:
            raise DatasetError(
                f"{self.path} holds {m['env_id']} (obs {tuple(m['obs_shape'])}, actions {stored_space}), not "
                f"{env_id} (obs {tuple(obs_shape)}, actions {action_space}): choose another --out directory"
            )

    def _write_manifest(self) -> None:
        self.manifest[DIGEST] = manifest_digest(self.manifest)
        data = json.dumps(self.manifest, indent=1).encode()
        _write(self.path / MANIFEST, lambda f: f.write(data))

    def _recover(self, repair: bool = False) -> int:
        """Delete leftovers of interrupted writes; list complete episode files the manifest missed (checked whole
        against the manifest; an incomplete one stops it, or with `repair` moves to DATA/damaged/)."""
        for leftover in [*self.path.glob(".tmp-*"), *(self.path / EPISODES).glob(".tmp-*")]:
            leftover.unlink(missing_ok=True)
        listed = {e["file"] for e in self.manifest["episodes"]}
        recovered = 0
        for file in sorted((self.path / EPISODES).glob("ep_*.npz")):
            if file.name in listed or not EPISODE_FILE.fullmatch(file.name):
                continue
            try:
                with np.load(file) as npz:
                    info = _episode_info(file, npz)
                self._check_whole(info)
            except (*READ_ERRORS, DatasetError) as e:
                if repair:
                    self._move_aside(file)
                    continue
                raise DatasetError(f"{file} is not a complete episode of this dataset ({e}): delete it and collect "
                                   "again") from None
            self.manifest["episodes"].append(info.to_json())
            recovered += 1
        if recovered:
            self._write_manifest()
        return recovered

    def _check_whole(self, info: EpisodeInfo) -> None:
        """Read every array of the episode `info` (not listed yet) against the manifest: a DatasetError if any
        is damaged."""
        manifest = dict(self.manifest, episodes=[info.to_json()])
        EpisodeDataset(self.path, cache_chunks=0, check_files=False, manifest=manifest).episode(0)

    def _move_aside(self, file: Path) -> None:
        (self.path / DAMAGED).mkdir(exist_ok=True)
        os.replace(file, self.path / DAMAGED / file.name)
        self.dropped.append(file.name)

    def _drop_damaged(self) -> None:
        """Take the listed episodes that are missing or damaged out of the manifest (files to DATA/damaged/)."""
        dataset = EpisodeDataset(self.path, check_files=False)
        keep = []
        for i, entry in enumerate(self.manifest["episodes"]):
            file = self.path / EPISODES / entry["file"]
            try:
                dataset.episode(i)
            except DatasetError:
                if file.exists():
                    self._move_aside(file)
                else:
                    self.dropped.append(entry["file"])
                continue
            keep.append(entry)
        if len(keep) < len(self.manifest["episodes"]):
            self.manifest["episodes"] = keep
            self._write_manifest()

    @property
    def episodes(self) -> int:
        """Number of stored episodes."""
        return len(self.manifest["episodes"])

    def add_episode(self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                    truncated: np.ndarray, policy: str = "") -> EpisodeInfo:
        """Store one episode of T steps: frames (T+1, H, W, 3) uint8, actions (T, ...), rewards/flags (T,)."""
        frames = np.asarray(frames)
        steps = len(actions)
        if frames.dtype != np.uint8 or frames.shape != (steps + 1, *self.obs_shape):
            raise DatasetError(f"an episode of {steps} steps needs uint8 frames of shape "
                               f"{(steps + 1, *self.obs_shape)}, got {frames.dtype} {frames.shape}")
        if steps < 1:
            raise DatasetError("an episode needs at least one step")
        arrays = {
            "actions": np.asarray(actions, dtype=self._action_dtype).reshape(steps, *self._action_shape),
            "rewards": np.asarray(rewards, dtype=np.float32).reshape(steps),
            "terminated": np.asarray(terminated, dtype=bool).reshape(steps),
            "truncated": np.asarray(truncated, dtype=bool).reshape(steps),
            "policy": np.array(policy),
        }
        for k in range(steps // self.chunk_frames + 1):
            arrays[f"frames_{k:03d}"] = frames[k * self.chunk_frames : (k + 1) * self.chunk_frames]
        file = self.path / EPISODES / f"ep_{self._next:06d}.npz"
        _write(file, lambda f: np.savez_compressed(f, **arrays))
        self._next += 1
        info = EpisodeInfo(file.name, steps, float(arrays["rewards"].sum()), bool(arrays["terminated"][-1]),
                           bool(arrays["truncated"][-1]), policy)
        self.manifest["episodes"].append(info.to_json())
        self._write_manifest()
        return info

    def close(self) -> None:
        """Release the lock."""
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def repair_dataset(path: str | os.PathLike) -> list[str]:
    """Drop the episodes of the dataset at `path` that are missing or damaged: their files move to
    DATA/damaged/ and their entries leave the manifest; the intact ones stay. The names dropped."""
    path = Path(path)
    manifest = read_manifest(path)
    space = space_from_json(manifest["action_space"])
    with DatasetWriter(path, manifest["env_id"], tuple(manifest["obs_shape"]), space, repair=True) as writer:
        return writer.dropped


def _write(path: Path, write) -> None:
    """`atomic_write`, with a full disk reported as a DatasetError that says the stored episodes are intact."""
    try:
        atomic_write(path, write)
    except DiskFull as e:
        raise DatasetError(f"{e}: the episodes already stored are intact; free some space and run the same command "
                           "again to continue") from e
