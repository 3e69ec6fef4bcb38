"""The dynamics transformer: frame-causal attention over the tokens of the last T frames, conditioned on actions.

The tokens of frame t, with action a_t added, give a state per token position of frame t+1, from which the tokens
of frame t+1 are drawn coherently, token after token and digit after digit (token_decoder.py). The reward and (for
world models without a termination CNN, termination.py) the termination of that step come from an outcome head
that sees the transformer's state of frame t *and* the tokens of frame t+1 (as DIAMOND's reward model sees the next
observation): a brick that vanished shows in the next frame, so events are read off the outcome instead of being
guessed before it.

Time enters through rotary embeddings over the frame index (so cached keys stay valid as the window slides);
space through a learned embedding per token position.
All attention goes through `dreamworld.kernels.attention`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import nn

from dreamworld.kernels import RMSNorm, attention
from dreamworld.model.token_decoder import TokenDecoder

REWARD_CLASSES = 3  # reward sign: negative, zero, positive


@dataclass
class DynamicsConfig:
    """Size and shape of the dynamics transformer."""

    d_model: int = 256
    """width of the residual stream"""
    n_layers: int = 6
    """transformer blocks"""
    n_heads: int = 8
    """attention heads (d_model / n_heads must be 16, 32, 64 or 128)"""
    context_frames: int = 8
    """attention window W in frames: a frame attends to itself and the W-1 frames before it, in training (over
    longer sequences) and in generation (the sliding KV cache holds W-1 frames), so the two compute the same"""
    mlp_ratio: float = 4.0
    """hidden width of the MLP as a multiple of d_model"""
    dropout: float = 0.0
    """dropout on attention outputs and MLPs"""
    rope_base: float = 1000.0
    """base of the rotary frequencies over the frame index"""
    sampler_stride: tuple[int, int] = (2, 4)
    """the sampler (token_decoder.py) draws the tokens at the same (row, column) offset of this stride over the
    token grid together, the groups one after another (rows * cols passes a frame; the grid's size draws token by
    token), each digit conditioned on the choices before it"""
    local_mixing: bool = True
    """each block adds a depthwise 3x3 convolution over every frame's token grid (after attention): a token sees
    its neighbours' states directly, so an object moving from patch to patch is carried over (Catch, 800 steps:
    object recall at h=16 0.29 against 0.18; docs/experiments.md)"""


@dataclass
class KVCache:
    """Keys and values of the last `context_frames - 1` frames for every layer, and the next frame's index."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    frame: int = 0

    def replace_rows(self, rows: torch.Tensor, other: KVCache) -> None:
        """Overwrite the batch rows `rows` of every layer with those of `other` (sequences restarting in place; the
        two caches must hold the same number of frames)."""
        for layer in range(len(self.keys)):
            self.keys[layer][rows] = other.keys[layer]  # rows of (B, heads, L, head_dim)
            self.values[layer][rows] = other.values[layer]


def _rotary(frames: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """cos, sin of shape (len(frames), head_dim // 2) for absolute frame indices (computed in float64, so
    indices far into an episode lose no precision)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=frames.device) / head_dim)
    angles = frames.to(torch.float64)[:, None] * inv_freq[None, :]  # (F, head_dim/2)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, N, D) by per-position angles cos/sin (N, D/2)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, N, D/2) each
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, N, D/2, 2)
    return out.flatten(-2)  # (B, H, N, D)


def gumbel(uniform: torch.Tensor) -> torch.Tensor:
    """Uniform draws in [0, 1) -> Gumbel noise of the same shape (argmax of logits + it samples the softmax)."""
    return -torch.log(-torch.log(uniform.clamp_min(1e-20)))


def _grid_conv(conv: nn.Module, x: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """A 2-D convolution over each frame's square token grid: x (B, L, C) with L a multiple of tokens_per_frame."""
    B, L, C = x.shape
    side = math.isqrt(tokens_per_frame)
    g = x.reshape(B * L // tokens_per_frame, side, side, C).permute(0, 3, 1, 2)  # (B*F, C, side, side)
    return conv(g).permute(0, 2, 3, 1).reshape(B, L, C)  # (B, L, C)


class Block(nn.Module):
    """Pre-norm transformer block with frame-causal self-attention."""

    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm1 = RMSNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.norm2 = RMSNorm(cfg.d_model)
        hidden = int(cfg.mlp_ratio * cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, cfg.d_model), nn.Dropout(cfg.dropout))
        self.drop = nn.Dropout(cfg.dropout)
        self.local = (nn.Conv2d(cfg.d_model, cfg.d_model, 3, padding=1, groups=cfg.d_model)
                      if cfg.local_mixing else None)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, tokens_per_frame: int,
                window_frames: int, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x (B, L, C) -> (B, L, C); with `past` keys/values (B, H, Lp, D) the queries are the last L positions.
        Returns the output and the keys and values attended over (B, H, Lp+L, D), for caching."""
        B, L, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=2)
        q = q.view(B, L, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, H, L, D)
        k = k.view(B, L, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, H, L, D)
        v = v.view(B, L, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, H, L, D)
        q, k = _apply_rotary(q, cos, sin).to(v.dtype), _apply_rotary(k, cos, sin).to(v.dtype)  # bf16 under autocast
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # (B, H, Lp+L, D)
        y = attention(q, k, v, tokens_per_frame=tokens_per_frame, window_frames=window_frames)  # (B, H, L, D)
        y = y.transpose(1, 2).reshape(B, L, C)  # (B, L, C)
        x = x + self.drop(self.proj(y))
        if self.local is not None:
            x = x + _grid_conv(self.local, x, tokens_per_frame)
        x = x + self.mlp(self.norm2(x))
        return x, (k, v)


class ActionEmbedding(nn.Module):
    """Discrete actions through a table; Box actions scaled to [-1, 1] then through a linear layer."""

    def __init__(self, space: gym.Space, d_model: int):
        super().__init__()
        self.discrete = isinstance(space, gym.spaces.Discrete)
        if self.discrete:
            self.start = int(space.start)
            self.embed = nn.Embedding(int(space.n), d_model)
        elif isinstance(space, gym.spaces.Box):
            low = torch.as_tensor(space.low, dtype=torch.float32).flatten()
            high = torch.as_tensor(space.high, dtype=torch.float32).flatten()
            bounded = torch.isfinite(low) & torch.isfinite(high)
            self.register_buffer("center", torch.where(bounded, (low + high) / 2, 0.0), persistent=False)
            self.register_buffer("half_range", torch.where(bounded, (high - low) / 2, 1.0), persistent=False)
            self.embed = nn.Linear(low.numel(), d_model)
        else:
            raise TypeError(f"unsupported action space {space}: dreamworld handles Discrete and Box")

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (...,) long or (..., A) float -> (..., d_model)."""
        if self.discrete:
            return self.embed(actions.long() - self.start)
        return self.embed((actions.float() - self.center) / self.half_range)


class Dynamics(nn.Module):
    """Predicts the next frame's tokens, the reward and termination from past frames' tokens and actions."""

    def __init__(self, cfg: DynamicsConfig, levels: list[int], tokens_per_frame: int, action_space: gym.Space,
                 end_head: bool = True):
        super().__init__()
        head_dim = cfg.d_model // cfg.n_heads
        if cfg.d_model % cfg.n_heads or head_dim not in (16, 32, 64, 128):
            raise ValueError(f"d_model {cfg.d_model} / n_heads {cfg.n_heads} must give a head dim of 16, 32, 64 "
                             "or 128")
        self.cfg = cfg
        self.levels = list(levels)
        self.tokens_per_frame = tokens_per_frame
        basis = torch.cumprod(torch.tensor([1, *self.levels[:-1]]), 0)
        offsets = torch.cumsum(torch.tensor([0, *self.levels[:-1]]), 0)
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("levels_t", torch.tensor(self.levels), persistent=False)
        self.register_buffer("offsets", offsets, persistent=False)
        self.digit_embed = nn.Embedding(sum(self.levels), cfg.d_model)
        self.spatial = nn.Parameter(torch.randn(tokens_per_frame, cfg.d_model) * 0.02)
        self.action = ActionEmbedding(action_space, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        side = math.isqrt(tokens_per_frame)  # square token grids
        self.decoder = TokenDecoder(cfg.d_model, cfg.n_heads, self.levels, (side, side), tuple(cfg.sampler_stride))
        self.outcome = nn.Sequential(nn.Linear(2 * cfg.d_model, cfg.d_model), nn.GELU(approximate="tanh"))
        self.reward_head = nn.Linear(2 * cfg.d_model, REWARD_CLASSES)
        # no end head when the world model reads terminations off the drawn frames (termination.py)
        self.end_head = nn.Linear(2 * cfg.d_model, 1) if end_head else None
        self.apply(self._init)
        for block in self.blocks:
            if block.local is not None:  # local mixing starts adding nothing
                nn.init.zeros_(block.local.weight)
                nn.init.zeros_(block.local.bias)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def digits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token indices (...,) -> FSQ digits (..., len(levels))."""
        return (tokens[..., None] // self.basis) % self.levels_t

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token indices (...,) -> the sum of their FSQ digits' embeddings (..., C) in float32. Computed as a
        multi-hot row times the table: on the CPU, `nn.Embedding` and its backward took 29% of a training step
        (the matmul under 1%)."""
        hot = torch.zeros(*tokens.shape, self.digit_embed.num_embeddings, device=tokens.device)  # (..., sum(levels))
        hot.scatter_(-1, self.digits(tokens) + self.offsets, 1.0)
        with torch.autocast(tokens.device.type, enabled=False):
            return hot @ self.digit_embed.weight  # (..., C)

    def embed(self, tokens: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, N), actions (B, T, ...) -> inputs (B, T*N, C)."""
        B, T, N = tokens.shape
        x = self.embed_tokens(tokens)  # (B, T, N, C)
        x = x + self.spatial + self.action(actions)[:, :, None, :]  # (B, T, N, C)
        return x.reshape(B, T * N, -1)  # (B, T*N, C)

    def hidden(self, tokens: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass over sequences of any length T: tokens (B, T, N), actions (B, T, ...) -> normed
        final states (B, T, N, C), where step t looks back `context_frames` frames."""
        B, T, N = tokens.shape
        x = self.embed(tokens, actions)
        frame_ids = torch.arange(T, device=tokens.device).repeat_interleave(N)  # (T*N,)
        cos, sin = _rotary(frame_ids, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base, x.dtype)
        for block in self.blocks:
            x, _ = block(x, cos, sin, N, self.cfg.context_frames)
        return self.norm(x).view(B, T, N, -1)  # (B, T, N, C)

    def token_logits(self, h: torch.Tensor, next_tokens: torch.Tensor) -> torch.Tensor:
        """States (..., N, C) and the true next tokens (..., N) -> next-frame digit logits (..., N, sum(levels)):
        each digit's given the true tokens and digits before it (teacher forcing)."""
        return self.decoder(h, next_tokens)

    def outcomes(self, h: torch.Tensor, next_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """States of frame t (..., N, C) and the tokens of frame t+1 (..., N) -> reward logits (..., 3) and
        termination logits (...,) (None without an end head). Each token position compares its state with what
        appeared there; mean and max pooling over positions keep a one-token event (a vanished brick) from being
        averaged away."""
        seen = self.embed_tokens(next_tokens) + self.spatial  # (..., N, C)
        z = self.outcome(torch.cat((h, seen), -1))  # (..., N, C)
        # max, not amax: compiled in bfloat16, amax's backward (gradient shared among ties) gave NaN
        pooled = torch.cat((z.mean(-2), z.max(-2).values), -1)  # (..., 2C)
        return self.reward_head(pooled), None if self.end_head is None else self.end_head(pooled).squeeze(-1)

    def forward(self, tokens: torch.Tensor, actions: torch.Tensor, next_tokens: torch.Tensor):
        """Teacher-forced training pass: tokens (B, T, N), actions (B, T, ...) and the frames they led to,
        next_tokens (B, T, N) -> digit logits (B, T, N, sum(levels)), reward logits (B, T, 3), termination
        logits (B, T) (None without an end head)."""
        h = self.hidden(tokens, actions)  # (B, T, N, C)
        return (self.token_logits(h, next_tokens), *self.outcomes(h, next_tokens))

    def empty_cache(self) -> KVCache:
        """A cache holding no frames."""
        return KVCache(keys=[None] * len(self.blocks), values=[None] * len(self.blocks), frame=0)

    def step(self, tokens: torch.Tensor, actions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One frame through the cache: tokens (B, N), actions (B, ...) -> normed states (B, N, C) of this frame
        (feed them to `sample`, then with the sampled next tokens to `outcomes`).

        The cache gains this frame and drops frames older than `context_frames - 1`, so the cost of a step and
        the memory stay flat however long the episode runs.
        """
        x = self.embed(tokens[:, None], actions[:, None])  # (B, N, C)
        frame_ids = torch.full((self.tokens_per_frame,), cache.frame, device=tokens.device)
        cos, sin = _rotary(frame_ids, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base, x.dtype)
        keep = (self.cfg.context_frames - 1) * self.tokens_per_frame
        for i, block in enumerate(self.blocks):
            past = None if cache.keys[i] is None else (cache.keys[i], cache.values[i])
            x, (k, v) = block(x, cos, sin, self.tokens_per_frame, self.cfg.context_frames, past)
            if keep:
                cache.keys[i], cache.values[i] = k[:, :, -keep:], v[:, :, -keep:]  # (B, H, <=keep, D)
        cache.frame += 1
        return self.norm(x)  # (B, N, C)

    def sample(self, h: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Next-frame states (B, N, C) from `step` -> token indices (B, N). At temperature 0 the most likely choices;
        above it a draw from softmax(logits / temperature), with Gumbel noise (B, N, sum(levels)) from `noise` or
        made with `generator`."""
        if temperature > 0 and noise is None:
            noise = gumbel(torch.rand(*h.shape[:-1], sum(self.levels), generator=generator, device=h.device))
        return self.decoder.sample(h, temperature, noise)
