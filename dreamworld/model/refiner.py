"""The refiner: a decoder stage that draws each frame over the previous drawing, for worlds whose detail no token
grid can hold frame by frame.

Cave's walls carry ~150 random specks and scroll one pixel a step. Sixteen tokens cannot describe them, so the
tokenizer alone draws smooth walls (about 21 dB). But almost every pixel of a frame was on screen one step before,
one pixel to the right. The refiner takes the tokenizer's drawing of the new frame (the "fresh" drawing: right
shapes, blurry texture) and the previous frame as drawn, and predicts for every pixel softmax weights over the
previous frame's pixels within `reach` of it and the fresh pixel. The output is their weighted mean: it keeps or
moves what was there, and takes the fresh drawing where something new appears (a wall column entering at the edge,
the ship's old place). A mean never amplifies errors, so long chains of drawings stay stable (a kernel-predicting
decoder, as in Niklaus et al. 2017 for frame interpolation). The convolutions also read the action that led to the
frame: the player's move is then known rather than guessed from a blurry drawing. Without it Cave's ship, which
moves 2 px a step up, down or not at all, came out as a faint blend of the three.

The tokenizer is trained first and frozen: its tokens keep describing whole frames, which the dynamics and the
agents read. (Training both together let the tokens collapse to ~15 codes, as the copy did the work.) The refiner
learns on runs of consecutive frames, each drawn over its own drawing of the one before, and half the runs continue
chains of its own drawings across batches, so it sees, and learns to mend, the drift that long dreams produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from dreamworld.model.dynamics import ActionEmbedding


@dataclass
class RefinerConfig:
    """Shape of the refiner (how it trains lives in TrainConfig.refiner_*)."""

    width: int = 16
    """channels of its full-resolution convolutions (16 reconstructed Cave best in a fixed CPU budget against 8 and
    32: docs/experiments.md)"""
    layers: int = 3
    """3x3 convolutions before the one that predicts the weights (receptive field 2 * layers + 3 pixels)"""
    reach: int = 2
    """how far (pixels) a pixel of the previous frame can move in one step; larger moves are drawn fresh"""
    actions: bool = True
    """the convolutions also read the action that led to each frame (refiners saved before this field read none)"""


class Refiner(nn.Module):
    """(previous drawing, fresh drawing) float (B, 3, H, W) in [0, 1] and the actions (B, ...) that led to the
    frames -> the frames (B, 3, H, W) in [0, 1]."""

    def __init__(self, cfg: RefinerConfig, action_space: gym.Space):
        super().__init__()
        self.cfg = cfg
        self.action = ActionEmbedding(action_space, cfg.width) if cfg.actions else None  # added after the first conv
        if self.action is not None:
            nn.init.zeros_(self.action.embed.weight)  # learned from zero, as the weights below
        self.taps = (2 * cfg.reach + 1) ** 2
        layers: list[nn.Module] = [nn.Conv2d(6, cfg.width, 3, padding=1), nn.SiLU()]
        for _ in range(cfg.layers - 1):
            layers += [nn.Conv2d(cfg.width, cfg.width, 3, padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(cfg.width, self.taps + 1, 3, padding=1))
        nn.init.zeros_(layers[-1].weight)  # the untrained refiner passes the fresh drawing through
        nn.init.zeros_(layers[-1].bias)
        with torch.no_grad():
            layers[-1].bias[-1] = 4.0
        self.weights = nn.Sequential(*layers)

    def parameter_groups(self, logits_lr_scale: float) -> list[dict]:
        """Optimizer parameter groups: the last convolution (the mixing weights' logits) at `logits_lr_scale` of
        the learning rate (`run_phase` reads `lr_scale`), everything else at the full rate."""
        logits = list(self.weights[-1].parameters())
        ids = {id(p) for p in logits}
        return [{"params": [p for p in self.parameters() if id(p) not in ids]},
                {"params": logits, "lr_scale": logits_lr_scale}]

    def forward(self, previous: torch.Tensor, fresh: torch.Tensor, actions: torch.Tensor | None = None
                ) -> torch.Tensor:
        """See the class docstring; the output is a convex mix of the inputs' pixels. Under bfloat16 autocast only
        the weights' convolutions run in bfloat16; the softmax and the mix stay in float32."""
        x = (torch.cat([previous, fresh], 1) * 2 - 1).contiguous(memory_format=torch.channels_last)  # (B, 6, H, W)
        features = self.weights[0](x)  # (B, width, H, W) channels-last: oneDNN's fastest layout on the CPU
        if self.action is not None:
            if actions is None:
                raise ValueError("this refiner reads the action that led to each frame: pass `actions`")
            features = features + self.action(actions)[:, :, None, None].to(features.dtype)  # (B, width, 1, 1)
        logits = self.weights[1:](features)  # (B, taps + 1, H, W)
        weights = logits.float().softmax(1)
        padded = F.pad(previous, (self.cfg.reach,) * 4, mode="replicate")  # (B, 3, H + 2 reach, W + 2 reach)
        return fresh * weights[:, -1:] + ShiftedMix.apply(padded, weights[:, :-1])  # (B, 3, H, W)


class ShiftedMix(torch.autograd.Function):
    """padded (B, C, H + side - 1, W + side - 1), weights (B, side², H, W) -> (B, C, H, W): each pixel's weighted sum
    of the side x side neighbourhood around it, tap t = (dy, dx) = divmod(t, side) weighted by weights[:, t]. A
    shifted view per tap (6x faster than unfolding the neighbourhoods); the backward pass accumulates into one
    gradient buffer, where autograd's would zero and copy a padded gradient per tap (a float32 refiner step on 2
    AVX2 cores, width 16: 212 ms against 235, the same gradients)."""

    @staticmethod
    def forward(ctx, padded: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(padded, weights)
        out = None
        for tap, rows, cols in _taps(padded, weights):
            view, weight = padded[:, :, rows, cols], weights[:, tap : tap + 1]  # (B, C, H, W), (B, 1, H, W)
            out = view * weight if out is None else out.addcmul_(view, weight)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padded, weights = ctx.saved_tensors
        grad_padded = torch.zeros_like(padded)  # (B, C, H + side - 1, W + side - 1)
        grad_weights = torch.empty_like(weights)  # (B, side², H, W)
        for tap, rows, cols in _taps(padded, weights):
            grad_padded[:, :, rows, cols].addcmul_(grad, weights[:, tap : tap + 1])
            torch.sum(grad * padded[:, :, rows, cols], 1, out=grad_weights[:, tap])
        return grad_padded, grad_weights


def _taps(padded: torch.Tensor, weights: torch.Tensor):
    """(tap, rows, columns) for each tap: the slices of `padded` that the tap shifts onto the output."""
    H, W = weights.shape[-2:]
    side = padded.shape[-1] - W + 1
    for tap in range(weights.shape[1]):
        dy, dx = divmod(tap, side)
        yield tap, slice(dy, dy + H), slice(dx, dx + W)
