"""Model presets: `tiny` (CPU, built-in games), `small` (Atari-like), `base` (GPU scale); `ModelOptions`, a preset
with the parts a run adds to it or changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from dreamworld.model.dynamics import DynamicsConfig
from dreamworld.model.tokenizer import TokenizerConfig
from dreamworld.model.world_model import WorldModelConfig

PresetName = Literal["tiny", "small", "base"]
PRESETS = get_args(PresetName)


def preset(name: str) -> WorldModelConfig:
    """The world-model config of a preset (env facts are filled in from the dataset at training time)."""
    if name == "tiny":
        # 8x8 tokens of 8x8 pixels, each read from its own patch (stable codes) from 8,000 codes: a 2x2 gem is
        # drawn where 16x16 patches of 64,000 codes smeared it, and a ball that 1,000 codes merged with the empty
        # patch keeps a code of its own (docs/experiments.md). A narrow, shallow transformer takes many steps in a
        # CPU budget; the sampler draws a frame in 8 passes of 8 tokens
        tok = TokenizerConfig(channels=[32, 64, 128], blocks=[1, 1, 1], levels=[8, 8, 5, 5, 5], encoder="patches")
        dyn = DynamicsConfig(d_model=128, n_layers=2, n_heads=2, context_frames=8)
    elif name == "small":
        # 8x8 tokens: Atari frames carry more detail than the built-in games
        tok = TokenizerConfig(channels=[32, 64, 128], blocks=[1, 1, 1], levels=[8, 5, 5, 5])
        dyn = DynamicsConfig(d_model=384, n_layers=6, n_heads=6, context_frames=12)
    elif name == "base":
        tok = TokenizerConfig(channels=[64, 128, 256], blocks=[1, 2, 2], levels=[8, 8, 8, 5, 5, 5])
        dyn = DynamicsConfig(d_model=768, n_layers=12, n_heads=12, context_frames=16)
    else:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return WorldModelConfig(tokenizer=tok, dynamics=dyn, preset=name)


def resize_dynamics(cfg: WorldModelConfig, width: int, layers: int, heads: int) -> None:
    """Give `cfg` a dynamics transformer `width` wide, `layers` deep with `heads` heads; ValueError naming the fix
    unless all are positive and width / heads is 16, 32, 64 or 128."""
    if min(width, layers, heads) < 1 or width % heads or width // heads not in (16, 32, 64, 128):
        raise ValueError(f"--dynamics-size {width} {layers} {heads}: give WIDTH LAYERS HEADS, positive, with "
                         "WIDTH / HEADS one of 16, 32, 64, 128 (e.g. 128 2 2)")
    cfg.dynamics.d_model, cfg.dynamics.n_layers, cfg.dynamics.n_heads = width, layers, heads


@dataclass
class ModelOptions:
    """The world model a run builds: a preset and what is added to it or changed in it (`dreamworld train` and
    `dreamworld loop` take these options alike)."""

    preset: PresetName = "tiny"
    """model size: tiny (CPU, built-in games), small (Atari-like), base (GPU)"""
    termination: Literal["frames", "tokens"] = "frames"
    """where terminations are read: frames (a CNN on the frames the model draws before and after a step; learns
    from few endings, but latent dreams decode every step) or tokens (the dynamics' outcome head, which reads the
    rewards in both cases; latent dreams skip the decoder)"""
    termination_channels: tuple[int, ...] | None = None
    """channels of the termination CNN's stride-2 convolutions (default: the preset's, 16 32 32)"""
    termination_hidden: int | None = None
    """width of the termination CNN's hidden layer (default: the preset's, 128)"""
    tokenizer_encoder: Literal["frame", "patches"] | None = None
    """frame: the tokenizer's encoder sees the whole frame (a change anywhere moves every code); patches: each
    token's code is read from its patch alone, so unchanged patches keep their codes (default: the preset's)"""
    tokenizer_channels: tuple[int, ...] | None = None
    """width of each tokenizer stage, one per halving of the frame (default: the preset's; tiny: 32 64 128)"""
    dynamics_size: tuple[int, int, int] | None = None
    """the dynamics transformer as WIDTH LAYERS HEADS (default: the preset's; tiny: 128 2 2); WIDTH / HEADS must
    be 16, 32, 64 or 128"""

    def config(self) -> WorldModelConfig:
        """The world-model config these options describe (env facts are filled in from the dataset in training)."""
        cfg = preset(self.preset)
        if self.termination not in ("frames", "tokens"):
            raise ValueError(f"termination must be 'frames' or 'tokens', got {self.termination!r}")
        if self.termination == "tokens":
            cfg.termination = None
        else:
            cfg.termination.channels = list(self.termination_channels or cfg.termination.channels)
            cfg.termination.hidden = self.termination_hidden or cfg.termination.hidden
        if self.tokenizer_encoder:
            cfg.tokenizer.encoder = self.tokenizer_encoder
        if self.tokenizer_channels:
            if len(self.tokenizer_channels) != len(cfg.tokenizer.channels):
                raise ValueError(f"--tokenizer-channels needs {len(cfg.tokenizer.channels)} widths for the "
                                 f"{self.preset} preset (one per stage), got {list(self.tokenizer_channels)}")
            cfg.tokenizer.channels = list(self.tokenizer_channels)
        if self.dynamics_size:
            resize_dynamics(cfg, *self.dynamics_size)
        return cfg

    def differences(self, saved: WorldModelConfig) -> list[str]:
        """How `saved` (a run's model config) differs from the model these options describe, one
        "name saved (asked: value)" string per option; empty when they agree."""
        asked, had = _option_values(self.config()), _option_values(saved)
        return [f"{name} {had[name]!r} (asked: {asked[name]!r})" for name in asked if asked[name] != had[name]]


def _option_values(cfg: WorldModelConfig) -> dict:
    """The ModelOptions a world-model config was built with, as far as the config shows them."""
    termination = cfg.termination
    return {"preset": cfg.preset, "termination": "tokens" if termination is None else "frames",
            "termination_channels": None if termination is None else list(termination.channels),
            "termination_hidden": None if termination is None else termination.hidden,
            "tokenizer_encoder": cfg.tokenizer.encoder,
            "tokenizer_channels": list(cfg.tokenizer.channels),
            "dynamics_size": [cfg.dynamics.d_model, cfg.dynamics.n_layers, cfg.dynamics.n_heads]}
