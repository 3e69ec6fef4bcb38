"""Frame-causal attention forward in Triton (FlashAttention-2 style online softmax).

One program handles BLOCK_M query rows of one (batch, head). It walks only the key blocks its schedule row
lists (see `schedule.py`): boundary blocks apply the frame mask, fully visible blocks skip it, invisible
blocks are never loaded. Scores are kept in base 2: log2(e) is folded into the softmax scale and the
log-sum-exp saved for the backward pass is base 2 as well.
"""

import math

import torch
import triton
import triton.language as tl

from .launch import check_mode, interpreting, new_output, next_power_of_2
from .schedule import key_schedule_tensor

LOG2E = math.log2(math.e)

# Running max before any visible key: finite, so a row whose first blocks are all masked stays NaN-free.
NEG_BIG = tl.constexpr(-1.0e30)


@triton.jit
def frame_visible(q_frame, k_frame, window, HAS_WINDOW: tl.constexpr):
    """Broadcast frame visibility: key frame <= query frame (and > query frame - window)."""
    visible = k_frame <= q_frame
    if HAS_WINDOW:
        visible = visible & (k_frame > q_frame - window)
    return visible


@triton.jit
def _attn_fwd_kernel(
    Q, K, V, O, LSE, SCHED,
    qk_scale, n_q, n_k, n_heads, frame, window,
    stride_qb, stride_qh, stride_qn,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_ob, stride_oh, stride_on,
    HAS_WINDOW: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    batch = (pid_bh // n_heads).to(tl.int64)
    head = (pid_bh % n_heads).to(tl.int64)
    Q += batch * stride_qb + head * stride_qh
    K += batch * stride_kb + head * stride_kh
    V += batch * stride_vb + head * stride_vh
    O += batch * stride_ob + head * stride_oh
    LSE += pid_bh.to(tl.int64) * n_q

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_j = tl.arange(0, BLOCK_N)
    row_ok = offs_m < n_q
    q = tl.load(Q + offs_m[:, None] * stride_qn + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    q_frame = (offs_m + n_k - n_q) // frame

    m_i = tl.full([BLOCK_M], NEG_BIG, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    sched = SCHED + pid_m * 4
    # phase p walks [sched[p], sched[p + 1]): 0 masked blocks before the fully visible run, 1 the run
    # (no mask), 2 masked blocks after it
    for phase in tl.static_range(3):
        lo = tl.load(sched + phase)
        hi = tl.load(sched + phase + 1)
        for start_n in range(lo, hi, BLOCK_N):
            offs_n = start_n + offs_j
            col_ok = offs_n < n_k
            # k_t (D, BLOCK_N): k loaded transposed
            k_t = tl.load(K + offs_n[None, :] * stride_kn + offs_d[:, None], mask=col_ok[None, :], other=0.0)
            s = tl.dot(q, k_t, input_precision="ieee") * qk_scale  # (BLOCK_M, BLOCK_N), base-2 logits
            if phase != 1:
                visible = frame_visible(q_frame[:, None], (offs_n // frame)[None, :], window, HAS_WINDOW)
                s = tl.where(visible & col_ok[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(V + offs_n[:, None] * stride_vn + offs_d[None, :], mask=col_ok[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
            m_i = m_new

    l_i = tl.where(row_ok, l_i, 1.0)  # padding rows past n_q may have seen nothing; they are not stored
    acc = acc / l_i[:, None]
    o_ptrs = O + offs_m[:, None] * stride_on + offs_d[None, :]
    tl.store(o_ptrs, acc.to(O.dtype.element_ty), mask=row_ok[:, None])
    tl.store(LSE + offs_m, m_i + tl.log2(l_i), mask=row_ok)


def forward_blocks(head_dim: int, n_q: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages) for the forward kernel.

    One fixed config in the interpreter; on GPU a small table by head dim and element size (checked to
    compile for sm_90, the 16-bit ones without register spills). Short query runs (a KV-cache step)
    shrink BLOCK_M to the next power of two >= n_q (at least 16, tl.dot's minimum).
    """
    if interpreting():
        block_m, block_n, warps, stages = 32, 16, 4, 1
    elif dtype == torch.float32:  # ieee fp32 dots run on FMA units and need small tiles to avoid spills
        block_m, block_n, warps, stages = (64, 16, 8, 2) if head_dim <= 64 else (32, 16, 8, 2)
    else:
        block_m, block_n, warps, stages = 128, 64, 8, 3
    return min(block_m, max(16, next_power_of_2(n_q))), block_n, warps, stages


def attention_forward(q, k, v, frame: int, window: int | None, scale: float):
    """Run the forward kernel. q (B, H, Nq, D), k/v (B, H, Nk, D) with unit stride on D.

    Returns (out (B, H, Nq, D) in q's dtype, lse (B, H, Nq) float32, base 2).
    """
    batch, heads, n_q, head_dim = q.shape
    n_k = k.shape[2]
    block_m, block_n, warps, stages = forward_blocks(head_dim, n_q, q.dtype)
    sched = key_schedule_tensor(n_q, n_k, frame, window, block_m, block_n, q.device)
    out = new_output((batch, heads, n_q, head_dim), q.dtype, q.device)
    lse = new_output((batch, heads, n_q), torch.float32, q.device)
    grid = (sched.shape[0], batch * heads)
    check_mode(_attn_fwd_kernel)
    _attn_fwd_kernel[grid](
        q, k, v, out, lse, sched,
        scale * LOG2E, n_q, n_k, heads, frame, window or 0,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        HAS_WINDOW=window is not None, HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n,
        num_warps=warps, num_stages=stages,
    )
    return out, lse
