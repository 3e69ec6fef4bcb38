"""Attention and normalisation kernels: Triton on CUDA, PyTorch with the same semantics elsewhere.

`attention` is frame-causal scaled dot-product attention (with KV-cache steps and sliding windows),
`rms_norm` / `RMSNorm` a fused RMSNorm; `frame_mask` is the boolean mask both backends implement.
"""

from .attention_torch import frame_mask
from .dispatch import RMSNorm, attention, rms_norm

__all__ = ["RMSNorm", "attention", "frame_mask", "rms_norm"]
