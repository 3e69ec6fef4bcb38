"""Videos and image grids: MP4/GIF writing and real | imagined | difference panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dreamworld.io import atomic_path


def write_video(path: str | Path, frames: np.ndarray, fps: int) -> Path:
    """Write uint8 (T, H, W, 3) frames to .mp4 (H.264 through imageio-ffmpeg) or .gif, atomically (a kill leaves
    the old file or the new one)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"cannot write video {path}: use a .mp4 or .gif file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            iio.imwrite(tmp, frames, duration=1000 / fps, loop=0)
        else:
            iio.imwrite(tmp, frames, fps=fps, codec="libx264", macro_block_size=1)
    return path


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (..., H, W, 3) frames."""
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def side_by_side(real: np.ndarray, imagined: np.ndarray, scale: int = 3, gap: int = 2) -> np.ndarray:
    """Rollouts (S, T, H, W, 3) -> one video (S*T, H', 3W' + gaps, 3): real | imagined | |difference|,
    the samples one after another."""
    diff = np.abs(real.astype(np.int16) - imagined.astype(np.int16)).astype(np.uint8)
    sep = np.full((*real.shape[:3], gap, 3), 64, np.uint8)  # (S, T, H, gap, 3)
    panel = np.concatenate([real, sep, imagined, sep, diff], axis=3)  # (S, T, H, 3W + 2gap, 3)
    return upscale(panel.reshape(-1, *panel.shape[2:]), scale)  # (S*T, H*s, (3W+2gap)*s, 3)
