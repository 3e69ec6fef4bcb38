"""Public entry points: argument checks, then the Triton kernels or the PyTorch path with the same semantics.

Backend choice, per call: the `backend` argument if given, else the environment variable
(DREAMWORLD_ATTENTION for attention, DREAMWORLD_RMS_NORM for rms_norm) if set to "torch" or "triton",
else Triton for CUDA tensors with an active Triton driver and PyTorch otherwise. Triton can be asked for on CPU
tensors when TRITON_INTERPRET=1 (the interpreter runs the kernels; that is how the tests check them), but it is
never chosen there automatically. Asking for Triton where it cannot run is an error.
"""

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .attention_torch import attention_torch
from .launch import triton_ready

HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
BACKENDS = ("torch", "triton")


def _backend(backend: str | None, env_var: str, device: torch.device) -> str:
    """Resolve the backend for one call: "torch" or "triton"."""
    source = "backend"
    if backend is None:
        backend, source = os.environ.get(env_var) or None, env_var
    if backend is None:
        return "triton" if device.type == "cuda" and triton_ready(device) else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"{source}={backend!r} is not a backend: use 'torch' or 'triton'")
    if backend == "triton" and not triton_ready(device):
        raise RuntimeError(
            f"{source}='triton' but Triton cannot run on {device} tensors: move them to a CUDA device with a "
            "working Triton install, set TRITON_INTERPRET=1 to run the kernels on CPU (slow, for tests), "
            "or use 'torch'"
        )
    return backend


def _check_attention_inputs(q, k, v) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} is a {type(t).__name__}, expected a torch.Tensor of shape (B, H, N, D)")
        if t.dim() != 4:
            raise ValueError(f"{name} has {t.dim()} dims, expected (B, H, N, D): reshape it, e.g. "
                             f"x.view(B, N, H, D).transpose(1, 2)")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"q is {q.dtype} but {name} is {t.dtype}: cast them to one dtype")
        if t.device != q.device:
            raise ValueError(f"q is on {q.device} but {name} is on {t.device}: move them to one device")
    if q.dtype not in DTYPES:
        raise TypeError(f"dtype {q.dtype} unsupported: use float16, bfloat16 or float32")
    if k.shape != v.shape:
        raise ValueError(f"k has shape {tuple(k.shape)} but v has {tuple(v.shape)}: they must match")
    if q.shape[:2] != k.shape[:2]:
        raise ValueError(f"q has (B, H) = {tuple(q.shape[:2])} but k has {tuple(k.shape[:2])}: they must "
                         "match (repeat k and v for grouped heads)")
    if q.shape[3] != k.shape[3]:
        raise ValueError(f"q has head dim {q.shape[3]} but k has {k.shape[3]}: they must match")
    if q.shape[3] not in HEAD_DIMS:
        raise ValueError(f"head dim {q.shape[3]} unsupported: use 16, 32, 64 or 128")
    n_q, n_k = q.shape[2], k.shape[2]
    if n_q == 0 or q.shape[0] == 0 or q.shape[1] == 0:
        raise ValueError(f"q has shape {tuple(q.shape)}: B, H and N must be at least 1")
    if n_q > n_k:
        raise ValueError(f"q has {n_q} positions but k has {n_k}: queries are the last Nq key positions, "
                         "so Nq must be <= Nk")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")


@torch.compiler.disable  # compiled models call it as it is: traced, the CPU path's masked SDPA ran 63% slower
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, tokens_per_frame: int | None = None,
              causal: bool = True, window_frames: int | None = None, scale: float | None = None,
              backend: str | None = None) -> torch.Tensor:
    """Frame-causal scaled dot-product attention.

    q (B, H, Nq, D), k and v (B, H, Nk, D) with Nq <= Nk: the queries are the last Nq positions (a KV-cache
    step passes one frame of queries against every cached key). Position i is in frame i // tokens_per_frame;
    a query sees every key whose frame is <= its own, and with `window_frames=W` only keys whose frame is
    > query_frame - W. tokens_per_frame=None means 1 (plain causal); causal=False means full attention.
    D must be 16, 32, 64 or 128; dtypes float16, bfloat16 or float32. `scale` defaults to 1/sqrt(D).
    `backend` is "torch", "triton" or None (see the module docstring). Returns (B, H, Nq, D) in q's dtype.
    """
    _check_attention_inputs(q, k, v)
    n_k = k.shape[2]
    frame = 1 if tokens_per_frame is None else tokens_per_frame
    _positive_int("tokens_per_frame", frame)
    if window_frames is not None:
        _positive_int("window_frames", window_frames)
        if not causal:
            raise ValueError("window_frames needs causal=True: full attention has no frames to count back")
    if not causal:
        frame = n_k  # one frame holding every position: full attention
    if window_frames is not None and window_frames > (n_k - 1) // frame:
        window_frames = None  # the window reaches back past frame 0: no window
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    if _backend(backend, "DREAMWORLD_ATTENTION", q.device) == "triton":
        from .attention_triton import attention_triton

        return attention_triton(q, k, v, frame, window_frames, scale)
    return attention_torch(q, k, v, frame, window_frames, scale)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, *,
             backend: str | None = None) -> torch.Tensor:
    """RMSNorm over the last dim: x * rsqrt(mean(x^2) + eps) * weight in float32, returned in x's dtype.

    x (..., C), weight (C,). `backend` as for `attention` (environment variable DREAMWORLD_RMS_NORM);
    the Triton kernels take C <= 8192, the automatic choice falls back to PyTorch above that.
    """
    if x.dim() == 0 or weight.shape != (x.shape[-1],):
        raise ValueError(f"weight has shape {tuple(weight.shape)} but x has {tuple(x.shape)}: "
                         "weight must be (C,) with C = x.shape[-1]")
    if x.device != weight.device:
        raise ValueError(f"x is on {x.device} but weight is on {weight.device}: move them to one device")
    if x.dtype not in DTYPES or weight.dtype not in DTYPES:
        raise TypeError(f"x is {x.dtype} and weight {weight.dtype}: use float16, bfloat16 or float32")
    automatic = backend is None and not os.environ.get("DREAMWORLD_RMS_NORM")
    chosen = _backend(backend, "DREAMWORLD_RMS_NORM", x.device)
    if chosen == "triton" and x.numel() > 0:
        from .rms_norm_triton import MAX_COLUMNS, rms_norm_triton

        if x.shape[-1] <= MAX_COLUMNS:
            return rms_norm_triton(x, weight, eps)
        if not automatic:
            raise ValueError(f"rms_norm over {x.shape[-1]} columns: the Triton kernel takes at most "
                             f"{MAX_COLUMNS}; use backend='torch'")
    return F.rms_norm(x.float(), (x.shape[-1],), weight.float(), eps).to(x.dtype)


class RMSNorm(nn.Module):
    """RMSNorm over the last dim with a learned scale (initialised to ones), using `rms_norm`."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., dim) -> (..., dim) in x's dtype."""
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        """Shown by print(module)."""
        return f"{self.weight.shape[0]}, eps={self.eps}"
