"""Training the refiner: chains of its own drawings (`ChainSampler`) and its loss."""

from __future__ import annotations

import numpy as np
import torch

from dreamworld.model.refiner import Refiner
from dreamworld.model.tokenizer import pixels


class ChainSampler:
    """Training runs for the refiner: `run` consecutive frames of one episode with the frame before them. The
    first `chains` runs of a batch continue chains: each starts where that chain's last run ended, over the
    refiner's own drawing of the frame before (`update`), until its episode ends or, with chance `restart`, a new
    chain starts on a real frame; so chains of every age up to hundreds of frames are trained. The other runs
    start over real frames, with Gaussian noise of up to `noise` (0..1 scale) standing for a drawing's errors.
    `actions` (F, ...) holds the action taken at each frame (`Steps.actions`)."""

    def __init__(self, frames: torch.Tensor, fresh: torch.Tensor, actions: torch.Tensor, episode_start: torch.Tensor,
                 run: int, runs: int, chains: int, generator: torch.Generator, noise: float = 0.03,
                 restart: float = 0.02):
        self.frames, self.fresh = frames, fresh  # (F, H, W, 3) uint8 each: the real frames, the tokenizer's drawings
        self.actions = actions  # (F, ...)
        self.episode_start, self.run, self.runs, self.chains = episode_start, run, runs, min(chains, runs)
        self.generator, self.noise, self.restart = generator, noise, restart
        index = torch.arange(len(frames) - run)
        # a run may start at s when frame s - 1 and frames s .. s + run - 1 are all of one episode
        self.starts = index[(episode_start[index] != index) & (episode_start[index + run] == episode_start[index])]
        if not len(self.starts):
            raise ValueError(f"no episode has {run + 1} frames: the refiner needs longer episodes (or a shorter "
                             "--refiner-run)")
        self.chain_at = self._random_starts(self.chains)  # (chains,) first frame of each chain's next run
        self.chain_drawn: torch.Tensor | None = None  # (chains, 3, H, W) drawing of the frame before it

    def _random_starts(self, count: int) -> torch.Tensor:
        return self.starts[torch.randint(len(self.starts), (count,), generator=self.generator)]

    def sample(self, device: str | torch.device) -> dict[str, torch.Tensor]:
        """real, fresh (runs, run + 1, 3, H, W) in [0, 1] (index 0 is the frame before the run); actions
        (runs, run, ...): the ones that led to frames 1..run; previous (runs, 3, H, W): what each run's first frame
        is drawn over."""
        starts = torch.cat([self.chain_at, self._random_starts(self.runs - self.chains)])  # (runs,)
        index = starts[:, None] + torch.arange(-1, self.run)[None]  # (runs, run + 1)
        real = pixels(self.frames[index.flatten()], device).unflatten(0, index.shape)  # (runs, run + 1, 3, H, W)
        fresh = pixels(self.fresh[index.flatten()], device).unflatten(0, index.shape)
        sigma = torch.rand(len(starts), 1, 1, 1, generator=self.generator).to(device) * self.noise
        previous = (real[:, 0] + sigma * torch.randn(real[:, 0].shape, generator=self.generator).to(device))
        previous = previous.clamp(0, 1)  # (runs, 3, H, W)
        if self.chain_drawn is not None:
            previous = torch.cat([self.chain_drawn.to(device), previous[self.chains :]])
        return {"real": real, "fresh": fresh, "actions": self.actions[index[:, :-1]].to(device), "previous": previous}

    def update(self, last: torch.Tensor) -> None:
        """Continue the chains after a batch: `last` (runs, 3, H, W) holds each run's drawing of its last frame."""
        following = self.chain_at + self.run  # (chains,)
        end = (following + self.run).clamp(max=len(self.frames) - 1)
        goes_on = ((following + self.run < len(self.frames)) & (self.episode_start[end] == self.episode_start[
            self.chain_at]) & (torch.rand(self.chains, generator=self.generator) >= self.restart))  # (chains,)
        fresh_starts = self._random_starts(self.chains)
        self.chain_at = torch.where(goes_on, following, fresh_starts)
        real_before = pixels(self.frames[self.chain_at - 1])  # (chains, 3, H, W)
        self.chain_drawn = torch.where(goes_on[:, None, None, None], last[: self.chains].detach().cpu(), real_before)


def refiner_loss(refiner: Refiner, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """L1 + squared error of runs drawn frame by frame over their own drawings (gradients flow through the run)
    -> (loss, named floats to log, the drawings of each run's last frame (runs, 3, H, W), detached)."""
    real, fresh, previous = batch["real"], batch["fresh"], batch["previous"]
    loss, squared = 0.0, 0.0
    for t in range(1, real.shape[1]):
        drawn = refiner(previous, fresh[:, t], batch["actions"][:, t - 1])  # (runs, 3, H, W)
        error = drawn - real[:, t]
        loss = loss + error.square().mean() + error.abs().mean()
        squared += error.detach().square().mean().item()
        previous = drawn
    steps = real.shape[1] - 1
    mse = squared / steps
    return loss / steps, {"loss": loss.item() / steps, "psnr": -10 * float(np.log10(max(mse, 1e-10)))}, \
        previous.detach()
