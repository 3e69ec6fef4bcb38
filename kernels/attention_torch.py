"""The PyTorch path of the frame-causal attention: SDPA with a cached boolean frame mask.

Same semantics as the Triton kernels. Masks are built once per (Nq, Nk, P, W, device); a mask that shows
every key becomes no mask at all, and a square plain-causal one becomes SDPA's `is_causal`, so those cases
take SDPA's fastest paths. (SDPA's `is_causal` aligns the diagonal top-left when Nq < Nk, while queries here
are the last Nq positions, so a non-square causal case keeps its explicit mask.)
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


def attention_torch(q, k, v, frame: int, window: int | None, scale: float) -> torch.Tensor:
    """Frame-causal attention with PyTorch SDPA; arguments already validated and normalised.

    q (B, H, Nq, D), k/v (B, H, Nk, D); `frame` tokens per frame (>= Nk means full attention), `window` in
    frames or None. Returns (B, H, Nq, D) in q's dtype.
    """
    mask, is_causal = _sdpa_mask(q.shape[2], k.shape[2], frame, window, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale)
