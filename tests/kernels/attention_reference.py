"""Float64 references and error measures shared by the kernel tests.

Errors are relative to the reference's scale: max |x - ref| / max |ref| over the whole tensor. Per-element
relative error is meaningless where the reference is near zero, and attention outputs and gradients are
dense averages whose magnitude the tensor-wide maximum represents well.
"""

import torch


def reference_mask(n_q: int, n_k: int, tokens_per_frame: int | None, window_frames: int | None,
                   causal: bool = True) -> torch.Tensor:
    """(n_q, n_k) bool, True where query row j (absolute position n_k - n_q + j) sees key i."""
    if not causal:
        return torch.ones(n_q, n_k, dtype=torch.bool)
    p = tokens_per_frame or 1
    query_frame = torch.tensor([(n_k - n_q + j) // p for j in range(n_q)])  # (n_q,)
    key_frame = torch.tensor([i // p for i in range(n_k)])  # (n_k,)
    visible = key_frame[None, :] <= query_frame[:, None]  # (n_q, n_k)
    if window_frames is not None:
        visible = visible & (key_frame[None, :] > query_frame[:, None] - window_frames)
    return visible


def naive_attention(q, k, v, mask: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Masked softmax attention in the inputs' dtype: softmax(q k^T * scale + mask) v."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-1, -2)) * scale  # (B, H, Nq, Nk)
    scores = scores.masked_fill(~mask.to(q.device), float("-inf"))
    return scores.softmax(-1) @ v


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """max |x - ref| / max |ref|, in float64."""
    ref = ref.double()
    return ((x.double() - ref).abs().max() / ref.abs().max()).item()


def output_and_grads(fn, inputs, grad_out):
    """Run fn(*inputs) with fresh leaf copies of inputs; return [out, *grads of the inputs]."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, grad_out.to(out.dtype))
    return [out.detach(), *grads]
