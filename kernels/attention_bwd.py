"""Frame-causal attention backward in Triton (FlashAttention-2 style, no atomics).

Three kernels: a preprocess computing delta = rowsum(dO * O); a dK/dV kernel parallel over key blocks that
walks only the query blocks able to see its keys; a dQ kernel parallel over query blocks that walks the same
key blocks as the forward pass. Probabilities are recomputed from the base-2 log-sum-exp of the forward.
"""

import torch
import triton
import triton.language as tl

from .attention_fwd import LOG2E, frame_visible
from .launch import check_mode, interpreting, new_output, next_power_of_2
from .schedule import key_schedule_tensor, query_schedule_tensor


@triton.jit
def _attn_bwd_delta_kernel(
    O, DO, DELTA, n_q, n_heads,
    stride_ob, stride_oh, stride_on, stride_dob, stride_doh, stride_don,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    batch = (pid_bh // n_heads).to(tl.int64)
    head = (pid_bh % n_heads).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < n_q
    O += batch * stride_ob + head * stride_oh
    o = tl.load(O + offs_m[:, None] * stride_on + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    DO += batch * stride_dob + head * stride_doh
    do = tl.load(DO + offs_m[:, None] * stride_don + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + pid_bh.to(tl.int64) * n_q + offs_m, delta, mask=row_ok)


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, SCHED,
    qk_scale, scale, n_q, n_k, n_heads, frame, window,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
    stride_dob, stride_doh, stride_don,
    stride_dkb, stride_dkh, stride_dkn, stride_dvb, stride_dvh, stride_dvn,
    HAS_WINDOW: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    batch = (pid_bh // n_heads).to(tl.int64)
    head = (pid_bh % n_heads).to(tl.int64)
    Q += batch * stride_qb + head * stride_qh
    K += batch * stride_kb + head * stride_kh
    V += batch * stride_vb + head * stride_vh
    DO += batch * stride_dob + head * stride_doh
    DK += batch * stride_dkb + head * stride_dkh
    DV += batch * stride_dvb + head * stride_dvh
    LSE += pid_bh.to(tl.int64) * n_q
    DELTA += pid_bh.to(tl.int64) * n_q

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_i = tl.arange(0, BLOCK_M)
    key_ok = offs_n < n_k
    k = tl.load(K + offs_n[:, None] * stride_kn + offs_d[None, :], mask=key_ok[:, None], other=0.0)
    v = tl.load(V + offs_n[:, None] * stride_vn + offs_d[None, :], mask=key_ok[:, None], other=0.0)
    k_frame = offs_n // frame
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    sched = SCHED + pid_n * 4
    # phase p walks query blocks [sched[p], sched[p + 1]), masked unless p == 1 (see the forward kernel)
    for phase in tl.static_range(3):
        lo = tl.load(sched + phase)
        hi = tl.load(sched + phase + 1)
        for start_m in range(lo, hi, BLOCK_M):
            offs_m = start_m + offs_i
            row_ok = offs_m < n_q
            # q_t (D, BLOCK_M): q loaded transposed
            q_t = tl.load(Q + offs_m[None, :] * stride_qn + offs_d[:, None], mask=row_ok[None, :], other=0.0)
            do = tl.load(DO + offs_m[:, None] * stride_don + offs_d[None, :], mask=row_ok[:, None], other=0.0)
            lse = tl.load(LSE + offs_m, mask=row_ok, other=0.0)
            delta = tl.load(DELTA + offs_m, mask=row_ok, other=0.0)
            s_t = tl.dot(k, q_t, input_precision="ieee") * qk_scale  # (BLOCK_N, BLOCK_M), base-2 logits
            if phase != 1:
                q_frame = (offs_m + n_k - n_q) // frame
                visible = frame_visible(q_frame[None, :], k_frame[:, None], window, HAS_WINDOW)
                s_t = tl.where(visible & row_ok[None, :], s_t, float("-inf"))
            p_t = tl.exp2(s_t - lse[None, :])
            dv += tl.dot(p_t.to(do.dtype), do, input_precision="ieee")
            dp_t = tl.dot(v, tl.trans(do), input_precision="ieee")  # (BLOCK_N, BLOCK_M); trans: (D, BLOCK_M)
            ds_t = p_t * (dp_t - delta[None, :])
            dk += tl.dot(ds_t.to(q_t.dtype), tl.trans(q_t), input_precision="ieee")  # trans: (BLOCK_M, D)

    dk *= scale
    dk_ptrs = DK + offs_n[:, None] * stride_dkn + offs_d[None, :]
    dv_ptrs = DV + offs_n[:, None] * stride_dvn + offs_d[None, :]
    tl.store(dk_ptrs, dk.to(DK.dtype.element_ty), mask=key_ok[:, None])
    tl.store(dv_ptrs, dv.to(DV.dtype.element_ty), mask=key_ok[:, None])


@triton.jit
def _attn_bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, SCHED,
    qk_scale, scale, n_q, n_k, n_heads, frame, window,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
    stride_dob, stride_doh, stride_don, stride_dqb, stride_dqh, stride_dqn,
    HAS_WINDOW: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    batch = (pid_bh // n_heads).to(tl.int64)
    head = (pid_bh % n_heads).to(tl.int64)
    Q += batch * stride_qb + head * stride_qh
    K += batch * stride_kb + head * stride_kh
    V += batch * stride_vb + head * stride_vh
    DO += batch * stride_dob + head * stride_doh
    DQ += batch * stride_dqb + head * stride_dqh
    LSE += pid_bh.to(tl.int64) * n_q
    DELTA += pid_bh.to(tl.int64) * n_q

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_j = tl.arange(0, BLOCK_N)
    row_ok = offs_m < n_q
    q = tl.load(Q + offs_m[:, None] * stride_qn + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    do = tl.load(DO + offs_m[:, None] * stride_don + offs_d[None, :], mask=row_ok[:, None], other=0.0)
    lse = tl.load(LSE + offs_m, mask=row_ok, other=0.0)
    delta = tl.load(DELTA + offs_m, mask=row_ok, other=0.0)
    q_frame = (offs_m + n_k - n_q) // frame
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    sched = SCHED + pid_m * 4
    # phase p walks key blocks [sched[p], sched[p + 1]), masked unless p == 1 (see the forward kernel)
    for phase in tl.static_range(3):
        lo = tl.load(sched + phase)
        hi = tl.load(sched + phase + 1)
        for start_n in range(lo, hi, BLOCK_N):
            offs_n = start_n + offs_j
            col_ok = offs_n < n_k
            # k_t, v_t (D, BLOCK_N): k and v loaded transposed
            k_t = tl.load(K + offs_n[None, :] * stride_kn + offs_d[:, None], mask=col_ok[None, :], other=0.0)
            v_t = tl.load(V + offs_n[None, :] * stride_vn + offs_d[:, None], mask=col_ok[None, :], other=0.0)
            s = tl.dot(q, k_t, input_precision="ieee") * qk_scale  # (BLOCK_M, BLOCK_N), base-2 logits
            if phase != 1:
                visible = frame_visible(q_frame[:, None], (offs_n // frame)[None, :], window, HAS_WINDOW)
                s = tl.where(visible & col_ok[None, :], s, float("-inf"))
            p = tl.exp2(s - lse[:, None])
            dp = tl.dot(do, v_t, input_precision="ieee")  # (BLOCK_M, BLOCK_N)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(k_t.dtype), tl.trans(k_t), input_precision="ieee")  # trans: (BLOCK_N, D)

    dq *= scale
    dq_ptrs = DQ + offs_m[:, None] * stride_dqn + offs_d[None, :]
    tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty), mask=row_ok[:, None])


def backward_blocks(head_dim: int, n_q: int, dtype: torch.dtype):
    """Launch configs ((BLOCK_N, BLOCK_M, num_warps, num_stages) for dK/dV, (BLOCK_M, BLOCK_N, ...) for dQ).

    One fixed config in the interpreter; on GPU a small table by head dim and element size (checked to
    compile for sm_90, the 16-bit ones without register spills). Query blocks shrink to the next power of
    two >= n_q (at least 16) for short query runs.
    """
    if interpreting():
        dkdv, dq = (32, 16, 4, 1), (32, 16, 4, 1)
    elif dtype == torch.float32:
        dkdv, dq = ((64, 16, 8, 2), (64, 16, 8, 2)) if head_dim <= 64 else ((32, 16, 8, 2), (32, 16, 8, 2))
    else:
        dkdv, dq = ((128, 32, 8, 3), (128, 32, 8, 3)) if head_dim <= 64 else ((32, 64, 8, 3), (64, 16, 8, 2))
    short = max(16, next_power_of_2(n_q))
    return (dkdv[0], min(dkdv[1], short), *dkdv[2:]), (min(dq[0], short), *dq[1:])


def attention_backward(q, k, v, out, lse, d_out, frame: int, window: int | None, scale: float):
    """Gradients (dq, dk, dv) of the frame-causal attention; inputs as in `attention_forward`.

    d_out (B, H, Nq, D) needs unit stride on D; lse is the base-2 log-sum-exp from the forward.
    """
    batch, heads, n_q, head_dim = q.shape
    n_k = k.shape[2]
    (kv_n, kv_m, kv_warps, kv_stages), (q_m, q_n, q_warps, q_stages) = backward_blocks(head_dim, n_q, q.dtype)
    window_arg = window or 0
    check_mode(_attn_bwd_dq_kernel)
    delta = new_output((batch, heads, n_q), torch.float32, q.device)
    _attn_bwd_delta_kernel[(triton.cdiv(n_q, q_m), batch * heads)](
        out, d_out, delta, n_q, heads,
        out.stride(0), out.stride(1), out.stride(2), d_out.stride(0), d_out.stride(1), d_out.stride(2),
        HEAD_DIM=head_dim, BLOCK_M=q_m,
    )

    dk = new_output(k.shape, k.dtype, k.device)
    dv = new_output(v.shape, v.dtype, v.device)
    sched = query_schedule_tensor(n_q, n_k, frame, window, kv_n, kv_m, q.device)
    _attn_bwd_dkdv_kernel[(sched.shape[0], batch * heads)](
        q, k, v, d_out, lse, delta, dk, dv, sched,
        scale * LOG2E, scale, n_q, n_k, heads, frame, window_arg,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), d_out.stride(0), d_out.stride(1), d_out.stride(2),
        dk.stride(0), dk.stride(1), dk.stride(2), dv.stride(0), dv.stride(1), dv.stride(2),
        HAS_WINDOW=window is not None, HEAD_DIM=head_dim, BLOCK_M=kv_m, BLOCK_N=kv_n,
        num_warps=kv_warps, num_stages=kv_stages,
    )

    dq = new_output(q.shape, q.dtype, q.device)
    sched = key_schedule_tensor(n_q, n_k, frame, window, q_m, q_n, q.device)
    _attn_bwd_dq_kernel[(sched.shape[0], batch * heads)](
        q, k, v, d_out, lse, delta, dq, sched,
        scale * LOG2E, scale, n_q, n_k, heads, frame, window_arg,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), d_out.stride(0), d_out.stride(1), d_out.stride(2),
        dq.stride(0), dq.stride(1), dq.stride(2),
        HAS_WINDOW=window is not None, HEAD_DIM=head_dim, BLOCK_M=q_m, BLOCK_N=q_n,
        num_warps=q_warps, num_stages=q_stages,
    )
    return dq, dk, dv
