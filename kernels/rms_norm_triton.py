"""Fused RMSNorm in Triton: y = x * rsqrt(mean(x^2) + eps) * weight, computed in float32.

The forward saves 1/rms per row. The backward writes dx row by row and, per program, a float32 partial sum
of dweight over its rows; a second pass (a sum over programs) finishes dweight, so no atomics are needed.
"""

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from .launch import check_mode, interpreting, new_output, next_power_of_2

# Largest row the single-block kernels take (a row lives in registers; wider rows spill on sm_90).
MAX_COLUMNS = 8192


@triton.jit
def _rms_norm_fwd_kernel(
    X, W, Y, RSTD, n_rows, n_cols, stride_x, stride_y, eps,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    row_ok = rows < n_rows
    col_ok = cols < n_cols
    mask = row_ok[:, None] & col_ok[None, :]
    rows64 = rows[:, None].to(tl.int64)
    x = tl.load(X + rows64 * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, 1) / n_cols + eps)
    y = x * rstd[:, None] * w[None, :]
    tl.store(Y + rows64 * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + rows, rstd, mask=row_ok)


@triton.jit
def _rms_norm_bwd_kernel(
    X, W, DY, DX, RSTD, DW_PARTIAL, n_rows, n_cols, stride_x, stride_dy, stride_dx, rows_per_program,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_C)
    col_ok = cols < n_cols
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_C], dtype=tl.float32)
    for start in range(0, rows_per_program, BLOCK_R):
        rows = pid * rows_per_program + start + tl.arange(0, BLOCK_R)
        row_ok = rows < n_rows
        mask = row_ok[:, None] & col_ok[None, :]
        rows64 = rows[:, None].to(tl.int64)
        x = tl.load(X + rows64 * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + rows64 * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)
        x_hat = x * rstd[:, None]
        w_dy = dy * w[None, :]
        mean_dot = tl.sum(x_hat * w_dy, 1) / n_cols
        dx = (w_dy - x_hat * mean_dot[:, None]) * rstd[:, None]
        tl.store(DX + rows64 * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
        dw += tl.sum(dy * x_hat, 0)
    tl.store(DW_PARTIAL + pid * n_cols + cols, dw, mask=col_ok)


def _blocks(n_cols: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps): whole rows, at least 2048 elements per block, 512 per warp."""
    block_c = next_power_of_2(n_cols)
    block_r = max(1, 2048 // block_c)
    return block_r, block_c, max(4, block_r * block_c // 512)


def rms_norm_forward(x2: torch.Tensor, weight: torch.Tensor, eps: float):
    """x2 (R, C) with unit column stride -> (y (R, C) in x2's dtype, rstd (R,) float32)."""
    n_rows, n_cols = x2.shape
    block_r, block_c, warps = _blocks(n_cols)
    y = new_output((n_rows, n_cols), x2.dtype, x2.device)
    rstd = new_output((n_rows,), torch.float32, x2.device)
    check_mode(_rms_norm_fwd_kernel)
    _rms_norm_fwd_kernel[(triton.cdiv(n_rows, block_r),)](
        x2, weight, y, rstd, n_rows, n_cols, x2.stride(0), y.stride(0), eps,
        BLOCK_R=block_r, BLOCK_C=block_c, num_warps=warps,
    )
    return y, rstd


def rms_norm_backward(x2, weight, rstd, dy2):
    """Gradients (dx (R, C) in x2's dtype, dweight (C,) in weight's dtype) from dy2 (R, C)."""
    n_rows, n_cols = x2.shape
    block_r, block_c, warps = _blocks(n_cols)
    row_blocks = triton.cdiv(n_rows, block_r)
    programs = min(row_blocks, 4 if interpreting() else 512)
    rows_per_program = triton.cdiv(row_blocks, programs) * block_r
    programs = triton.cdiv(n_rows, rows_per_program)
    dx = new_output((n_rows, n_cols), x2.dtype, x2.device)
    dw_partial = new_output((programs, n_cols), torch.float32, x2.device)
    check_mode(_rms_norm_bwd_kernel)
    _rms_norm_bwd_kernel[(programs,)](
        x2, weight, dy2, dx, rstd, dw_partial, n_rows, n_cols,
        x2.stride(0), dy2.stride(0), dx.stride(0), rows_per_program,
        BLOCK_R=block_r, BLOCK_C=block_c, num_warps=warps,
    )
    return dx, dw_partial.sum(0).to(weight.dtype)


def _rows(x: torch.Tensor) -> torch.Tensor:
    x2 = x.reshape(-1, x.shape[-1])  # (R, C): every leading dim folded into rows
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps: float):
        x2 = _rows(x)
        y, rstd = rms_norm_forward(x2, weight.contiguous(), eps)
        ctx.save_for_backward(x2, weight, rstd)
        return y.view(x.shape)  # (..., C) like x

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x2, weight, rstd = ctx.saved_tensors
        dx, dw = rms_norm_backward(x2, weight.contiguous(), rstd, _rows(dy))
        return dx.view(dy.shape), dw, None  # dx (..., C) like dy


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim with the Triton kernels; x (..., C), weight (C,), C <= MAX_COLUMNS."""
    return _RMSNorm.apply(x, weight, eps)
