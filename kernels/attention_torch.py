"""The PyTorch path of the frame-causal attention: SDPA with a cached boolean frame mask.

Same semantics as the Triton kernels. Masks are built once per (Nq, Nk, P, W, device); a mask that shows
every key becomes no mask at all, and a square plain-causal one becomes SDPA's `is_causal`, so those cases
take SDPA's fastest paths. (SDPA's `is_causal` aligns the diagonal top-left when Nq < Nk, while queries here
are the last Nq positions, so a non-square causal case keeps its explicit mask.)

On the CPU a masked call over at most `MATH_MAX_KEYS` keys runs as two matmuls around a float32 softmax, where
SDPA's CPU flash kernel spends its time on per-block overhead (benchmarks/results/attention_cpu.json, 2 cores,
forward + backward of the token decoder's 64 positions: 5.5 ms against 19.9 in bfloat16, alike in float32; at
the dynamics' 512 positions the two are within the machine's noise of each other, so SDPA keeps those).
"""

from functools import lru_cache

import torch
import torch.nn.functional as F


def frame_mask(n_q: int, n_k: int, tokens_per_frame: int, window_frames: int | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (n_q, n_k) mask, True where query row j (position n_k - n_q + j) sees key i.

    A query sees a key when key_frame <= query_frame (and key_frame > query_frame - window_frames).
    """
    q_frame = (torch.arange(n_q, device=device) + n_k - n_q) // tokens_per_frame  # (n_q,)
    k_frame = torch.arange(n_k, device=device) // tokens_per_frame  # (n_k,)
    visible = k_frame[None, :] <= q_frame[:, None]  # (n_q, n_k)
    if window_frames is not None:
        visible &= k_frame[None, :] > q_frame[:, None] - window_frames
    return visible


@lru_cache(maxsize=256)
def _sdpa_mask(n_q: int, n_k: int, frame: int, window: int | None, device: torch.device):
    """(attn_mask, is_causal) for SDPA: (None, False) when all visible, (None, True) when square causal."""
    mask = frame_mask(n_q, n_k, frame, window, device)
    if bool(mask.all()):
        return None, False
    if n_q == n_k and torch.equal(mask, torch.ones_like(mask).tril()):
        return None, True
    return mask, False


MATH_MAX_KEYS = 256
"""longest key sequence a masked CPU call computes as explicit matmuls"""
MATH_MAX_SCORES = 1 << 24
"""largest B * H * Nq * Nk it computes so (64 MiB of float32 scores)"""


def _masked_math(q, k, v, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q k^T * scale, keys hidden by ~mask) v with the softmax in float32: (B, H, Nq, D) in q's dtype."""
    scores = (q @ k.transpose(-2, -1)).float() * scale  # (B, H, Nq, Nk)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)  # (B, H, Nq, Nk)
    return weights.to(v.dtype) @ v  # (B, H, Nq, D)


def _math_is_faster(q: torch.Tensor, mask: torch.Tensor) -> bool:
    """Explicit matmuls for a masked CPU call over few keys (module docstring)."""
    return (q.device.type == "cpu" and mask.shape[1] <= MATH_MAX_KEYS
            and q.shape[0] * q.shape[1] * mask.numel() <= MATH_MAX_SCORES)


def attention_torch(q, k, v, frame: int, window: int | None, scale: float) -> torch.Tensor:
    """Frame-causal attention with PyTorch SDPA (or, masked on the CPU, explicit matmuls); arguments already
    validated and normalised.

    q (B, H, Nq, D), k/v (B, H, Nk, D); `frame` tokens per frame (>= Nk means full attention), `window` in
    frames or None. Returns (B, H, Nq, D) in q's dtype.
    """
    mask, is_causal = _sdpa_mask(q.shape[2], k.shape[2], frame, window, q.device)
    if mask is not None and _math_is_faster(q, mask):
        return _masked_math(q, k, v, mask, scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale)
