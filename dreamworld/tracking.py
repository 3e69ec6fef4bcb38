"""The one place that talks to wandb. Modes: offline (default, no network), online, disabled."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np

MODES = ("offline", "online", "disabled")


class Tracker:
    """Logs metrics, images, videos and artifacts to a wandb run; does nothing when disabled or not rank 0.

    If wandb is not installed and the mode is offline (the default), tracking turns itself off with a warning;
    asking for online without wandb is an error naming the extra to install.
    """

    def __init__(self, mode: str, run_dir: str | os.PathLike, config: dict, job: str, project: str = "dreamworld",
                 name: str | None = None, rank: int = 0, resume_id: str | None = None):
        if mode not in MODES:
            raise ValueError(f"--wandb {mode!r} is not a mode: use one of {', '.join(MODES)}")
        self.run = None
        if mode == "disabled" or rank != 0:
            return
        if importlib.util.find_spec("wandb") is None:
            message = "wandb is not installed: pip install 'dreamworld[wandb]'"
            if mode == "online":
                raise ImportError(f"--wandb online needs the wandb extra: {message}")
            warnings.warn(f"{message}; tracking is off for this run", stacklevel=2)
            return
        import wandb

        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, name=name or Path(run_dir).name, dir=str(run_dir), mode=mode,
                              config=config, job_type=job, id=resume_id, resume="allow" if resume_id else None,
                              settings=wandb.Settings(silent=True, console="off"))

    @property
    def id(self) -> str | None:
        """The wandb run id (to resume the same run), or None when off."""
        return self.run.id if self.run else None

    def log(self, metrics: dict, step: int) -> None:
        """Log scalars under their names (`train/...`, `eval/...`, `agent/...`)."""
        if self.run:
            self.run.log(metrics, step=step)

    def image(self, name: str, image: np.ndarray, step: int, caption: str = "") -> None:
        """Log a uint8 (H, W, 3) image."""
        if self.run:
            import wandb

            self.run.log({name: wandb.Image(image, caption=caption)}, step=step)

    def video(self, name: str, frames: np.ndarray, fps: int, step: int) -> None:
        """Log uint8 frames (T, H, W, 3) as a video at the env's fps."""
        if self.run:
            import wandb

            video = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))  # (T, 3, H, W) as wandb expects
            self.run.log({name: wandb.Video(video, fps=fps, format="mp4")}, step=step)

    def artifact(self, name: str, kind: str, directory: str | os.PathLike, files: list[str]) -> None:
        """Log files of `directory` as an artifact (e.g. the checkpoint)."""
        if self.run:
            import wandb

            art = wandb.Artifact(name, type=kind)
            for f in files:
                if (Path(directory) / f).exists():
                    art.add_file(str(Path(directory) / f), name=f)
            self.run.log_artifact(art)

    def summary(self, values: dict) -> None:
        """Set run summary values."""
        if self.run:
            self.run.summary.update(values)

    def finish(self) -> None:
        """Close the run (flushes offline files)."""
        if self.run:
            self.run.finish()
            self.run = None
