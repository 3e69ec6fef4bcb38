"""What play writes: recordings (MP4 + GIF) and played episodes (a dataset), off the window's thread."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dreamworld.envs import EpisodeBuffer
from dreamworld.media import upscale, write_video
from dreamworld.model.world_model import WorldModelConfig


class Jobs:
    """Slow writes run one at a time in a worker thread, so the window never waits for a disk or an encoder."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dreamworld-play")
        self._running: list[Future] = []

    def submit(self, fn, *args) -> Future:
        """Run fn(*args) in the worker; its result (a message) comes back through `poll`."""
        future = self._pool.submit(fn, *args)
        self._running.append(future)
        return future

    def poll(self) -> list[str]:
        """Messages of the jobs finished since the last call (errors included, as messages)."""
        done = [f for f in self._running if f.done()]
        self._running = [f for f in self._running if not f.done()]
        return [f.result() if f.exception() is None else f"failed: {f.exception()}" for f in done]

    def close(self) -> list[str]:
        """Wait for every job; their messages."""
        self._pool.shutdown(wait=True)
        return self.poll()


def write_recording(path: Path, frames: list[np.ndarray], fps: int, scale: int) -> str:
    """Write frames (H, W, 3) upscaled `scale` times to path.mp4 and path.gif -> a message naming both."""
    video = upscale(np.stack(frames), scale)  # (T, H*scale, W*scale, 3)
    mp4 = write_video(path.with_suffix(".mp4"), video, fps)
    gif = write_video(path.with_suffix(".gif"), video, fps)
    return f"recorded {len(frames)} frames: {mp4}, {gif}"


class Recorder:
    """Collects the frames shown while recording; a recording ends on `stop`, or when the picture changes size
    (the real game appears or goes), and the next one continues in a new file (NAME-2, NAME-3, ...)."""

    def __init__(self, jobs: Jobs, fps: int, scale: int):
        self.jobs, self.fps, self.scale = jobs, fps, scale
        self.frames: list[np.ndarray] | None = None
        self.path: Path | None = None
        self._used: set[Path] = set()

    @property
    def on(self) -> bool:
        """Recording now."""
        return self.frames is not None

    def start(self, path: str | Path) -> None:
        """Begin a recording to `path` (its .mp4 and .gif; a free name when this session used it already)."""
        path = Path(path).with_suffix("")
        candidate, n = path, 1
        while candidate in self._used:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")
        self._used.add(candidate)
        self.path, self.frames = candidate, []

    def add(self, frame: np.ndarray) -> None:
        """Record one shown frame (H, W, 3)."""
        if self.frames is None:
            return
        if self.frames and self.frames[0].shape != frame.shape:
            path = self.path
            self.stop()
            self.start(path)
        self.frames.append(frame.copy())

    def stop(self) -> None:
        """End the recording and write it in the background (nothing to write without frames)."""
        if self.frames:
            self.jobs.submit(write_recording, self.path, self.frames, self.fps, self.scale)
        self.frames = None


def default_recording_path(folder: str | Path) -> Path:
    """recordings/play-YYYYmmdd-HHMMSS (the suffixes .mp4 / .gif come on writing)."""
    return Path(folder) / time.strftime("play-%Y%m%d-%H%M%S")


def save_episode(out: str | Path, cfg: WorldModelConfig, track: EpisodeBuffer, source: str,
                 policy: str) -> str:
    """Append the episode in `track` to the dataset `out` (created if new) as an episode of cfg.env_id -> a
    message. `source` says whose frames they are ("real" or "dream"), `policy` who played."""
    from dreamworld.envs import DatasetWriter, space_from_json

    if not track.actions:
        return "nothing to save yet: play at least one step"
    with DatasetWriter(out, cfg.env_id, tuple(cfg.obs_shape), space_from_json(cfg.action_space),
                       render_fps=cfg.render_fps) as writer:
        info = track.write(writer, policy=f"play:{policy}:{source}")
        count = writer.episodes
    return f"saved {info.steps} {source} steps as episode {count} of {out}"
