"""Coherent sampling of a frame's tokens: a few groups of tokens one after another, and each token's FSQ digits one
after another.

The dynamics transformer gives a state per token position of the next frame. Sampling the 16 tokens, and the 6 FSQ
digits of each, independently from those states loses small objects: when the model is unsure which patch holds the
ball, every patch decides alone (the ball vanishes or doubles), and the argmax of each digit's marginal need not be
a code the model finds likely at all. The decoder here factorises the frame into G groups of tokens:

    p(frame) = prod_g prod_{j in g} p(token_j | states, groups < g)
    p(token_j | ...) = prod_d p(digit_jd | ..., digit_j<d)

A group holds the tokens at one offset of a (rows, cols) stride over the grid, so tokens drawn together lie at
least that far apart, and the parts of an object that straddles neighbouring patches are drawn one after another,
each seeing the others. Groups see the ones before them through one block-causal attention layer over the frame's
positions in group order, whose input at a position is its state plus the embedding of the token one group earlier
(the first group sees a learned vector); digits see the digits before them through their embeddings, added to the
hidden layer of a small MLP head. A stride as large as the grid draws one token at a time (as IRIS does). Training
is teacher forced: one pass gives every digit's logits given the true tokens and digits before it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dreamworld.kernels import RMSNorm, attention


def group_order(grid: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Row-major token positions (N,) sorted by group, then row, then column: the group of the token at (r, c) is
    (r % stride rows) * stride cols + (c % stride cols), each stride clipped to the grid."""
    (h, w), (sr, sc) = grid, (min(stride[0], grid[0]), min(stride[1], grid[1]))
    if h % sr or w % sc:
        raise ValueError(f"the sampler stride {stride} must divide the token grid {grid}")
    r, c = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)  # (N,) each
    return torch.argsort((r % sr * sc + c % sc) * h * w + r * w + c)


class CausalLayer(nn.Module):
    """Pre-norm transformer layer with block-causal attention over a frame's token positions in group order (a
    group is a "frame" of `dreamworld.kernels.attention`: a position sees its group and the groups before it)."""

    def __init__(self, d_model: int, n_heads: int, group: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.n_heads, self.group = n_heads, group
        self.norm1 = RMSNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.norm2 = RMSNorm(d_model)
        hidden = int(mlp_ratio * d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d_model))

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x (M, L, C) -> (M, L, C); with `past` keys/values (M, H, Lp, D) the L positions follow them. Returns the
        output and the keys and values of all Lp + L positions."""
        M, L, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=2)
        q = q.view(M, L, self.n_heads, C // self.n_heads).transpose(1, 2)  # (M, H, L, D)
        k = k.view(M, L, self.n_heads, C // self.n_heads).transpose(1, 2)  # (M, H, L, D)
        v = v.view(M, L, self.n_heads, C // self.n_heads).transpose(1, 2)  # (M, H, L, D)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # (M, H, Lp+L, D)
        y = attention(q, k, v, tokens_per_frame=self.group)  # (M, H, L, D): a group sees groups <= its own
        x = x + self.proj(y.transpose(1, 2).reshape(M, L, C))  # (M, L, C)
        return x + self.mlp(self.norm2(x)), (k, v)


class TokenDecoder(nn.Module):
    """Next-frame tokens from the dynamics' states, each group of tokens conditioned on the groups before it and
    each digit on the digits before it in its token (module docstring)."""

    def __init__(self, d_model: int, n_heads: int, levels: list[int], grid: tuple[int, int],
                 stride: tuple[int, int]):
        super().__init__()
        self.levels = list(levels)
        order = group_order(grid, stride)
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("unorder", torch.argsort(order), persistent=False)
        self.group = len(order) // (min(stride[0], grid[0]) * min(stride[1], grid[1]))
        """tokens drawn together in one pass"""
        self.register_buffer("basis", torch.cumprod(torch.tensor([1, *self.levels[:-1]]), 0), persistent=False)
        self.register_buffer("levels_t", torch.tensor(self.levels), persistent=False)
        self.register_buffer("offsets", torch.cumsum(torch.tensor([0, *self.levels[:-1]]), 0), persistent=False)
        self.first = nn.Parameter(torch.zeros(d_model))
        """stands in for the tokens before the first group"""
        self.token_embed = nn.Embedding(sum(self.levels), d_model)
        """a token is the sum of its digits' rows"""
        self.layer = CausalLayer(d_model, n_heads, self.group)
        self.norm = RMSNorm(d_model)
        self.digit_in = nn.Linear(d_model, d_model)
        self.digit_embed = nn.Embedding(sum(self.levels), d_model)
        """digits already chosen in a token, added to the head's hidden layer"""
        self.digit_out = nn.Linear(d_model, sum(self.levels))

    def digits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token indices (...,) -> FSQ digits (..., len(levels))."""
        return (tokens[..., None] // self.basis) % self.levels_t

    def _embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token indices (...,) -> the sum of their digits' rows (..., C)."""
        return self.token_embed(self.digits(tokens) + self.offsets).sum(-2)  # (..., D, C) -> (..., C)

    def forward(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits: states (..., N, C) and the true next tokens (..., N) -> digit logits
        (..., N, sum(levels)), digit d of token j given the tokens of earlier groups and digits < d of token j."""
        lead, (N, C), S = h.shape[:-2], h.shape[-2:], self.group
        h = h.reshape(-1, N, C)[:, self.order]  # (M, N, C) in group order
        tokens = tokens.reshape(-1, N)[:, self.order]  # (M, N)
        before = torch.cat((self.first.expand(len(h), S, C).to(h.dtype),
                            self._embed_tokens(tokens[:, :-S]).to(h.dtype)), 1)  # (M, N, C): one group earlier
        u, _ = self.layer(h + before)  # (M, N, C)
        a = self.digit_in(self.norm(u))  # (M, N, C)
        chosen = self.digit_embed(self.digits(tokens) + self.offsets).to(a.dtype)  # (M, N, D, C)
        prefix = chosen.cumsum(2) - chosen  # (M, N, D, C): digits before each
        logits = self.digit_out(F.gelu(a[:, :, None] + prefix, approximate="tanh"))  # (M, N, D, sum(levels))
        spans = zip(self.offsets.tolist(), self.levels, strict=True)
        picked = [logits[:, :, d, o : o + n] for d, (o, n) in enumerate(spans)]  # digit d's own logits
        return torch.cat(picked, -1)[:, self.unorder].view(*lead, N, -1)  # (..., N, sum(levels)) row-major

    @torch.no_grad()
    def sample(self, h: torch.Tensor, temperature: float = 0.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """States (M, N, C) -> token indices (M, N), group by group and digit by digit. Each choice is the argmax
        of its logits / temperature plus `noise` (Gumbel noise (M, N, sum(levels)), row-major positions: a draw
        from the softmax); at temperature 0 or without noise, the most likely choice given the ones made."""
        M, N, C = h.shape
        S, offsets = self.group, self.offsets.tolist()
        h = h[:, self.order]  # (M, N, C) in group order
        noise = None if temperature <= 0 or noise is None else noise[:, self.order]  # (M, N, sum(levels))
        tokens = torch.zeros(M, N, dtype=torch.long, device=h.device)  # in group order
        before = self.first.expand(M, S, C).to(h.dtype)  # (M, S, C)
        past = None
        for g in range(0, N, S):
            u, past = self.layer(h[:, g : g + S] + before, past)  # (M, S, C)
            a = self.digit_in(self.norm(u))  # (M, S, C)
            prefix = torch.zeros_like(a)
            for d, (o, n) in enumerate(zip(offsets, self.levels, strict=True)):
                w, b = self.digit_out.weight[o : o + n], self.digit_out.bias[o : o + n]  # (n, C), (n,)
                logits = F.linear(F.gelu(a + prefix, approximate="tanh"), w.to(a.dtype), b.to(a.dtype)).float()
                if noise is not None:
                    logits = logits / temperature + noise[:, g : g + S, o : o + n]  # (M, S, n)
                digit = logits.argmax(-1)  # (M, S)
                tokens[:, g : g + S] += digit * self.basis[d]
                prefix = prefix + self.digit_embed(digit + o).to(a.dtype)
            before = self._embed_tokens(tokens[:, g : g + S]).to(h.dtype)  # (M, S, C)
        return tokens[:, self.unorder]  # (M, N) row-major
