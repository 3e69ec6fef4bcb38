"""The Triton attention as a differentiable op: forward and backward kernels in a torch.autograd.Function."""

import torch
from torch.autograd.function import once_differentiable

from .attention_bwd import attention_backward
from .attention_fwd import attention_forward


def _unit_last_stride(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


class _FrameAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, frame: int, window: int | None, scale: float):
        q, k, v = _unit_last_stride(q), _unit_last_stride(k), _unit_last_stride(v)
        out, lse = attention_forward(q, k, v, frame, window, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.frame, ctx.window, ctx.scale = frame, window, scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):
        q, k, v, out, lse = ctx.saved_tensors
        d_out = _unit_last_stride(d_out)
        dq, dk, dv = attention_backward(q, k, v, out, lse, d_out, ctx.frame, ctx.window, ctx.scale)
        return dq, dk, dv, None, None, None


def attention_triton(q, k, v, frame: int, window: int | None, scale: float) -> torch.Tensor:
    """Frame-causal attention with the Triton kernels; arguments already validated and normalised.

    q (B, H, Nq, D), k/v (B, H, Nk, D); `frame` tokens per frame (>= Nk means full attention), `window` in
    frames or None. Returns (B, H, Nq, D) in q's dtype.
    """
    return _FrameAttention.apply(q, k, v, frame, window, scale)
