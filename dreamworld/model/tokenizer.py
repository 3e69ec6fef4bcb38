"""Frame tokenizer: a conv autoencoder with finite scalar quantization (FSQ) between encoder and decoder.

A uint8 (H, W, 3) frame becomes a row-major grid of integer tokens (H / f) x (W / f), f = 2 ** len(channels);
the decoder turns tokens back into pixels. FSQ (Mentzer et al. 2023, "Finite Scalar Quantization") bounds each
latent dimension and rounds it to one of `levels[i]` values: the implicit codebook is the product of the levels,
with no learned codebook and no commitment loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PSNR_CAP_DB = 60.0
"""PSNR reported for a frame reconstructed exactly (its MSE is floored at the MSE of 60 dB)."""


@dataclass
class TokenizerConfig:
    """Architecture and loss of the frame tokenizer (defaults: the CPU `tiny` preset)."""

    image_size: int = 64
    """Height and width of the (square) frames, in pixels; a multiple of the downsampling factor."""
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    """Width of each encoder stage; every stage halves the resolution, so the grid is image_size / 2**len. Narrow
    early stages (the large ones) train fast: in the same 240 s on 2 AVX2 cores, 16 32 64 128 took 2,213 steps
    and drew Catch's held-out frames at 32.94 dB, 32 64 128 128 1,129 steps and 31.43 dB."""
    blocks: list[int] = field(default_factory=lambda: [0, 1, 1, 1])
    """Residual blocks in each stage (encoder and decoder alike), one entry per stage."""
    levels: list[int] = field(default_factory=lambda: [8, 8, 8, 5, 5, 5])
    """FSQ levels per latent dimension; the vocabulary is their product."""
    groups: int = 8
    """GroupNorm groups (each stage width must be divisible by it)."""
    encoder: Literal["frame", "patches"] = "frame"
    """frame: a conv encoder runs over the whole frame, so a token's code hangs on every pixel (GroupNorm statistics
    and the receptive field span the frame: a change anywhere moves codes everywhere); patches: non-overlapping
    stride-2 convs read each token's patch alone, so a patch that does not change keeps its code (the decoder
    still sees them all)"""
    edge_weight: float = 4.0
    """Extra loss weight on pixels near an edge (local colour range in a 3x3 window, 0..1)."""
    background_weight: float = 4.0
    """Extra loss weight on pixels by how far they are from the canvas (the learned background, 0..1)."""
    worst_pixels: int = 32
    """The loss adds the mean error of each frame's `worst_pixels` worst-reconstructed pixels (0 turns it off):
    a 2x2 ball is 4 of 4096 pixels, and this term keeps it from being averaged away."""
    worst_weight: float = 1.0
    """Weight of the worst-pixels term."""
    change_weight: float = 4.0
    """Extra loss weight on pixels that differ from the previous frame (when previous frames are given)."""
    l1_weight: float = 1.0
    """Weight of the L1 reconstruction term (sharp edges)."""
    mse_weight: float = 1.0
    """Weight of the squared-error reconstruction term (what PSNR measures)."""


class FSQ(nn.Module):
    """Finite scalar quantization: latent dim i is bounded with tanh and rounded to one of `levels[i]` values.

    Codes are the rounded values scaled to [-1, 1]; rounding passes gradients straight through.
    """

    def __init__(self, levels: list[int]):
        super().__init__()
        if any(n < 2 for n in levels):
            raise ValueError(f"FSQ levels must all be >= 2, got {levels}")
        self.levels = list(levels)
        basis = np.cumprod([1] + self.levels[:-1])  # mixed radix: dim 0 is the least significant digit
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.float32), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.long), persistent=False)

    @property
    def dim(self) -> int:
        """Number of latent dimensions (len(levels))."""
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        """Number of distinct codes: the product of the levels."""
        return math.prod(self.levels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Quantize z (..., dim) to codes (..., dim) in [-1, 1], with straight-through gradients."""
        half = (self._levels - 1) / 2
        digits = half * (1 + torch.tanh(z))  # in [0, L - 1]
        rounded = digits + (digits.round() - digits).detach()  # straight-through estimator
        return rounded / half - 1

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Map codes (..., dim) in [-1, 1] to integer indices (...) in [0, codebook_size)."""
        digits = ((codes + 1) * (self._levels - 1) / 2).round().long()  # (..., dim)
        return (digits * self._basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Map integer indices (...) to codes (..., dim) in [-1, 1]."""
        digits = (indices.unsqueeze(-1) // self._basis) % self._levels.long()  # (..., dim)
        return digits.float() * 2 / (self._levels - 1) - 1


class ResBlock(nn.Module):
    """Pre-activation residual block: (GroupNorm, SiLU, 3x3 conv) twice, plus the input."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

        nn.init.zeros_(self.body[-1].weight)  # each block starts as the identity
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w)."""
        return x + self.body(x)


def _encoder(cfg: TokenizerConfig) -> nn.Sequential:
    """Stride-2 4x4 convs between stages, residual blocks within them, then a 1x1 conv to the FSQ dims."""
    layers: list[nn.Module] = []
    c_in = 3
    for c, n in zip(cfg.channels, cfg.blocks, strict=True):
        layers.append(nn.Conv2d(c_in, c, 4, stride=2, padding=1))
        layers += [ResBlock(c, cfg.groups) for _ in range(n)]
        c_in = c
    layers += [nn.GroupNorm(cfg.groups, c_in), nn.SiLU(), nn.Conv2d(c_in, len(cfg.levels), 1)]
    return nn.Sequential(*layers)


class PointwiseBlock(nn.Module):
    """Residual 1x1-conv MLP (channels -> 2x -> channels) at each position alone."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.GELU(approximate="tanh"),
                                  nn.Conv2d(2 * channels, channels, 1))
        nn.init.zeros_(self.body[-1].weight)  # each block starts as the identity
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w)."""
        return x + self.body(x)


def _patch_encoder(cfg: TokenizerConfig) -> nn.Sequential:
    """Stride-2 2x2 convs between stages and 1x1 blocks within them, no normalisation: a token's code is a function
    of its own patch's pixels alone (every receptive field stays inside one patch), with the same filters at every
    place in it, computed over the whole frame at once."""
    layers: list[nn.Module] = []
    c_in = 3
    for c, n in zip(cfg.channels, cfg.blocks, strict=True):
        layers += [nn.Conv2d(c_in, c, 2, stride=2), nn.GELU(approximate="tanh")]
        layers += [PointwiseBlock(c) for _ in range(n)]
        c_in = c
    layers.append(nn.Conv2d(c_in, len(cfg.levels), 1))
    return nn.Sequential(*layers)


def _decoder(cfg: TokenizerConfig) -> nn.Sequential:
    """The encoder's mirror: 1x1 conv from the FSQ dims, residual blocks, stride-2 4x4 transposed convs."""
    layers: list[nn.Module] = [nn.Conv2d(len(cfg.levels), cfg.channels[-1], 1)]
    outs = list(reversed(cfg.channels[:-1]))
    for c, n, c_out in zip(reversed(cfg.channels), reversed(cfg.blocks), outs + [None], strict=True):
        layers += [ResBlock(c, cfg.groups) for _ in range(n)]
        if c_out is None:
            layers += [nn.GroupNorm(cfg.groups, c), nn.SiLU(), nn.ConvTranspose2d(c, 3, 4, stride=2, padding=1)]
            nn.init.zeros_(layers[-1].weight)  # the untrained decoder draws the canvas alone
            nn.init.zeros_(layers[-1].bias)
        else:
            layers.append(nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


class Tokenizer(nn.Module):
    """Conv encoder -> FSQ -> conv decoder; frames in as uint8 (B, H, W, 3), tokens out as (B, N) indices."""

    def __init__(self, cfg: TokenizerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or TokenizerConfig()
        factor = 2 ** len(cfg.channels)
        if len(cfg.blocks) != len(cfg.channels):
            raise ValueError(f"blocks {cfg.blocks} needs one entry per stage of channels {cfg.channels}")
        if cfg.encoder not in ("frame", "patches"):
            raise ValueError(f"tokenizer encoder must be 'frame' or 'patches', got {cfg.encoder!r}")
        if any(c % cfg.groups for c in cfg.channels):
            raise ValueError(f"every tokenizer stage width {cfg.channels} must be divisible by its GroupNorm groups "
                             f"({cfg.groups}): pick widths that are multiples of {cfg.groups}")
        if cfg.image_size % factor:
            raise ValueError(f"image_size {cfg.image_size} is not a multiple of the downsampling factor {factor}: "
                             "use fewer stages in channels or another image size")
        self.encoder = _encoder(cfg) if cfg.encoder == "frame" else _patch_encoder(cfg)
        self.fsq = FSQ(cfg.levels)
        self.decoder = _decoder(cfg)
        self.canvas = nn.Parameter(torch.full((3, cfg.image_size, cfg.image_size), 0.5))
        """Learned background image (3, H, W) in 0..1 that the decoder draws on; `fit_canvas` starts it."""
        # Conv weights channels-last, the memory order of the frames and codes (both arrive permuted from (B, H, W,
        # C)), so oneDNN reorders neither weights nor gradients on each call: a float32 training step of 16 frames
        # on 2 AVX2 cores took 218 ms against 235 (same values; checkpoints store them contiguous either way).
        self.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def fit_canvas(self, frames: np.ndarray) -> None:
        """Set the canvas to the per-pixel median of uint8 frames (N, H, W, 3): the dataset's background."""
        median = torch.from_numpy(np.median(frames, axis=0)).float() / 255  # (H, W, 3)
        self.canvas.copy_(median.permute(2, 0, 1))  # (3, H, W)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the token grid."""
        side = self.cfg.image_size // 2 ** len(self.cfg.channels)
        return side, side

    @property
    def tokens_per_frame(self) -> int:
        """Tokens per frame, h * w."""
        return self.grid[0] * self.grid[1]

    @property
    def vocab_size(self) -> int:
        """Number of distinct token values (the FSQ codebook size)."""
        return self.fsq.codebook_size

    def _to_input(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1] on the model's device."""
        size = self.cfg.image_size
        if frames.dtype != torch.uint8 or tuple(frames.shape[1:]) != (size, size, 3):
            raise ValueError(f"frames must be uint8 (B, {size}, {size}, 3), got {frames.dtype} {tuple(frames.shape)}")
        x = frames.to(self.fsq._levels.device).permute(0, 3, 1, 2)  # (B, 3, H, W)
        return x.float() / 127.5 - 1

    def _codes(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> quantized codes (B, h, w, dim)."""
        x = self._to_input(frames)  # (B, 3, H, W)
        return self.fsq(self.encoder(x).permute(0, 2, 3, 1))  # (B, h, w, dim)

    def _render(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w, dim) -> unclamped image (B, 3, H, W), 0..1 in the pixel range."""
        return self.decoder(codes.permute(0, 3, 1, 2)) + self.canvas  # (B, 3, H, W)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, H, W, 3) -> (reconstruction float (B, 3, H, W), unclamped; token indices (B, N))."""
        codes = self._codes(frames)  # (B, h, w, dim)
        indices = self.fsq.codes_to_indices(codes.detach()).flatten(1)  # (B, h * w)
        return self._render(codes), indices

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> token indices (B, N), row-major over the grid."""
        return self.fsq.codes_to_indices(self._codes(frames)).flatten(1)  # (B, h * w)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Token indices (B, N) -> frames float (B, 3, H, W) in [0, 1]."""
        h, w = self.grid
        codes = self.fsq.indices_to_codes(indices.to(self.fsq._basis.device).view(-1, h, w))  # (B, h, w, dim)
        return self._render(codes).clamp(0, 1)

    @torch.no_grad()
    def decode_uint8(self, indices: torch.Tensor) -> torch.Tensor:
        """Token indices (B, N) -> uint8 frames (B, H, W, 3)."""
        return self.to_uint8(self.decode(indices))

    @staticmethod
    def to_uint8(pixels: torch.Tensor) -> torch.Tensor:
        """Decoded frames float (B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3)."""
        return pixels.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # (B, H, W, 3)

    def loss(self, frames: torch.Tensor, prev_frames: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted L1 + MSE reconstruction loss of uint8 frames (B, H, W, 3), and named floats to log.

        Each pixel weighs 1 + edge_weight * (local colour range around it in the target) + change_weight *
        (its largest channel change from prev_frames), so small objects and moving things outweigh the flat
        background they sit on. The weighted mean divides by the total weight.
        """
        cfg = self.cfg
        recon, indices = self(frames)
        target = (self._to_input(frames) + 1) / 2  # (B, 3, H, W) in [0, 1]
        local_range = window_range(target)  # (B, 3, H, W)
        off_canvas = (target - self.canvas.detach()).abs()  # (B, 3, H, W)
        weight = 1 + cfg.edge_weight * local_range.amax(1, keepdim=True)  # (B, 1, H, W)
        weight = weight + cfg.background_weight * off_canvas.amax(1, keepdim=True)
        if prev_frames is not None:
            prev = (self._to_input(prev_frames) + 1) / 2  # (B, 3, H, W)
            weight = weight + cfg.change_weight * (target - prev).abs().amax(1, keepdim=True)
        err = recon - target
        per_pixel = cfg.mse_weight * err.square() + cfg.l1_weight * err.abs()  # (B, 3, H, W)
        total = (weight * per_pixel).sum() / (weight.sum() * 3)
        if cfg.worst_pixels:
            worst = per_pixel.mean(1).flatten(1).topk(cfg.worst_pixels, dim=1).values  # (B, worst_pixels)
            total = total + cfg.worst_weight * worst.mean()
        mse = err.detach().clamp(-1, 1).square().mean()
        stats = {"loss": total.item(), "mse": mse.item(), "psnr": -10 * math.log10(max(mse.item(), 1e-10)),
                 "codes_used": float(indices.unique().numel())}
        return total, stats


def window_range(images: torch.Tensor) -> torch.Tensor:
    """Images (B, C, H, W) -> the range (max - min) of each channel over the 3x3 window around each pixel, the same
    shape (the edge pixels' windows are cut at the border). As two 3-tap passes of elementwise max and min: the
    same values as max_pool2d(x, 3, 1, 1) + max_pool2d(-x, 3, 1, 1), at 1.6 ms against 29 for a 32-frame batch on
    2 AVX2 cores (max_pool2d computes indices even without gradients)."""
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")  # (B, C, H + 2, W + 2): edges repeat, max/min unchanged
    ranges = []
    for pick in (torch.maximum, torch.minimum):
        across = pick(pick(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])  # (B, C, H + 2, W)
        ranges.append(pick(pick(across[..., :-2, :], across[..., 1:-1, :]), across[..., 2:, :]))  # (B, C, H, W)
    return ranges[0] - ranges[1]


def pixels(frames: torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) -> float (B, 3, H, W) in [0, 1] on `device` (the inverse of `Tokenizer.to_uint8`)."""
    return frames.to(device).permute(0, 3, 1, 2).float() / 255


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Mean over frames of the per-frame PSNR (dB) of two uint8 stacks (..., H, W, C) on the 0..255 scale.

    Each frame's MSE covers all its pixels and channels; an exact match scores PSNR_CAP_DB.
    """
    a = torch.as_tensor(np.asarray(a)).float()
    b = torch.as_tensor(np.asarray(b)).float()
    mse = (a - b).square().flatten(-3).mean(-1)  # (...,) one MSE per frame
    floor = 255.0**2 * 10 ** (-PSNR_CAP_DB / 10)
    return float((10 * torch.log10(255.0**2 / mse.clamp_min(floor))).mean())
