"""Model presets: `tiny` (CPU, built-in games), `small` (Atari-like), `base` (GPU scale)."""

from __future__ import annotations

from .dynamics import DynamicsConfig
from .tokenizer import TokenizerConfig
from .world_model import WorldModelConfig

PRESETS = ("tiny", "small", "base")


def preset(name: str) -> WorldModelConfig:
    """The world-model config of a preset (env facts are filled in from the dataset at training time)."""
    if name == "tiny":
        # 4x4 tokens per frame: a 16-token frame is what makes CPU play and dream training fast
        tok = TokenizerConfig()
        dyn = DynamicsConfig(d_model=256, n_layers=4, n_heads=4, context_frames=8)
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
