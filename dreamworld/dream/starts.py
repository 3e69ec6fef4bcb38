"""`StartContexts`: the real frames and actions a dream starts from, saved with the checkpoint or drawn from a
dataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from dreamworld import checkpoint as ckpt
from dreamworld.dream.actions import check_actions
from dreamworld.io import CheckpointError, read_safetensors, run_file
from dreamworld.model.world_model import WorldModelConfig


class StartContexts:
    """Real start contexts for dreams: `context_frames` consecutive frames and the actions between them, drawn
    from the training dataset `data` when given, else from the starts saved with the checkpoint."""

    def __init__(self, run: str | os.PathLike, cfg: WorldModelConfig, data: str | os.PathLike | None = None):
        from dreamworld.envs import space_from_json

        self.length, self.space = cfg.dynamics.context_frames, space_from_json(cfg.action_space)
        if self.length < 2:
            raise ValueError(f"a dream needs context_frames >= 2 to start from real frames, the model has "
                             f"{self.length}")
        self._dataset = None
        if data is not None:
            self._open_dataset(data, cfg)
        else:
            self._read_saved(Path(run), cfg)

    def _open_dataset(self, data: str | os.PathLike, cfg: WorldModelConfig) -> None:
        """Use random windows anywhere in the dataset's episodes (more varied starts than episode openings)."""
        from dreamworld.envs import EpisodeDataset, space_from_json

        ds = EpisodeDataset(data)
        if (list(ds.obs_shape) != list(cfg.obs_shape) or ds.action_space != space_from_json(cfg.action_space)
                or (cfg.env_id and ds.env_id != cfg.env_id)):
            raise ValueError(f"dataset {data} ({ds.env_id}, frames {ds.obs_shape}, actions {ds.action_space}) does "
                             f"not match the world model ({cfg.env_id}, frames {tuple(cfg.obs_shape)}, actions "
                             f"{space_from_json(cfg.action_space)}): pass the dataset the model was trained on")
        windows = np.array([max(e.steps - self.length + 2, 0) for e in ds.episodes])  # start positions per episode
        if windows.sum() == 0:
            raise ValueError(f"no episode in {data} has the {self.length} frames a dream starts from")
        self._dataset, self._cumulative = ds, np.cumsum(windows)

    def _read_saved(self, run: Path, cfg: WorldModelConfig) -> None:
        """Check and keep the contexts in starts.safetensors (the last `length` frames of each)."""
        path = run_file(run, ckpt.STARTS)
        if not path.is_file():
            raise CheckpointError(f"{run} has no {ckpt.STARTS} (real start frames saved at training time): "
                                       "pass data=DATASET, the dataset the model was trained on")
        tensors = read_safetensors(path)
        frames, actions = tensors.get("frames"), tensors.get("actions")
        action_shape = () if cfg.action_space["type"] == "Discrete" else tuple(cfg.action_space["shape"])
        K = self.length
        if (frames is None or actions is None or frames.dtype != torch.uint8 or frames.ndim != 5
                or list(frames.shape[2:]) != list(cfg.obs_shape) or frames.shape[1] < K
                or tuple(actions.shape) != (frames.shape[0], frames.shape[1] - 1, *action_shape)):
            shapes = {k: (str(v.dtype), tuple(v.shape)) for k, v in tensors.items()}
            raise CheckpointError(
                f"{path} does not hold start contexts for this model (found {shapes}; expected frames uint8 (S, >="
                f"{K}, {', '.join(map(str, cfg.obs_shape))}) and actions (S, K-1{', ' if action_shape else ''}"
                f"{', '.join(map(str, action_shape))})): pass data=DATASET instead")
        try:
            check_actions(self.space, actions.numpy().reshape(-1, *action_shape), actions.shape[0] * actions.shape[1])
        except ValueError as e:
            raise CheckpointError(f"{path} holds start actions the model cannot take ({e}): pass data=DATASET "
                                       "instead") from None
        skip = frames.shape[1] - K  # keep the last K frames of longer contexts
        self._frames, self._actions = frames[:, skip:].numpy(), actions[:, skip:].numpy()

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One context picked with `rng`: frames uint8 (K, H, W, 3) and the K-1 actions between them."""
        if self._dataset is None:
            i = int(rng.integers(len(self._frames)))
            return self._frames[i], self._actions[i]
        flat = int(rng.integers(self._cumulative[-1]))
        episode = int(np.searchsorted(self._cumulative, flat, side="right"))
        start = flat - (self._cumulative[episode - 1] if episode else 0)
        window = self._dataset.window(episode, int(start), self.length - 1)
        return window["frames"], window["actions"]
