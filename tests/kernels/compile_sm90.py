"""Compile every Triton kernel for an H100 (sm_90) with its GPU launch configs; needs no GPU.

Run as a script with TRITON_INTERPRET unset (test_compile.py does). Prints one line per kernel; exits 0
when all compile, 1 on a compile error, 2 when this triton cannot target sm_90 (no NVIDIA toolchain).
"""

import sys

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from dreamworld.kernels import attention_bwd, attention_fwd, rms_norm_triton

SIDE_TABLES = {"LSE": "*fp32", "DELTA": "*fp32", "RSTD": "*fp32", "DW_PARTIAL": "*fp32", "SCHED": "*i32"}
FLOATS = ("qk_scale", "scale", "eps")
ELEMENTS = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def compile_sm90(kernel, element: str, constexprs: dict, warps: int, stages: int) -> None:
    """Compile `kernel` for sm_90; pointer args are `element` except the float32/int32 side tables."""

    def arg_type(name: str) -> str:
        if name in constexprs:
            return "constexpr"
        if name.isupper():
            return SIDE_TABLES.get(name, "*" + element)
        return "fp32" if name in FLOATS else "i32"

    source = ASTSource(kernel, {name: arg_type(name) for name in kernel.arg_names}, constexprs=constexprs)
    options = {"num_warps": warps, "num_stages": stages}
    triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)
    print(f"ok {kernel.__name__} {element} {constexprs} warps={warps} stages={stages}", flush=True)


def compile_attention(dtype: torch.dtype, head_dim: int, n_q: int, window: bool) -> None:
    """The forward and backward kernels with the configs the launchers pick for these shapes."""
    element, common = ELEMENTS[dtype], {"HAS_WINDOW": window, "HEAD_DIM": head_dim}
    block_m, block_n, warps, stages = attention_fwd.forward_blocks(head_dim, n_q, dtype)
    compile_sm90(attention_fwd._attn_fwd_kernel, element, {**common, "BLOCK_M": block_m, "BLOCK_N": block_n},
                 warps, stages)
    (kv_n, kv_m, kv_warps, kv_stages), (q_m, q_n, q_warps, q_stages) = attention_bwd.backward_blocks(
        head_dim, n_q, dtype)
    compile_sm90(attention_bwd._attn_bwd_dkdv_kernel, element, {**common, "BLOCK_N": kv_n, "BLOCK_M": kv_m},
                 kv_warps, kv_stages)
    compile_sm90(attention_bwd._attn_bwd_dq_kernel, element, {**common, "BLOCK_M": q_m, "BLOCK_N": q_n},
                 q_warps, q_stages)
    compile_sm90(attention_bwd._attn_bwd_delta_kernel, element, {"HEAD_DIM": head_dim, "BLOCK_M": q_m}, 4, 1)


def main() -> int:
    """Compile a spread of configs; the exit code says how it went."""
    try:
        compile_attention(torch.bfloat16, 64, 4096, True)
    except RuntimeError as error:
        if "ptxas" in str(error) or "cuda" in str(error).lower():
            print(f"cannot target sm_90 here: {error}")
            return 2
        raise
    compile_attention(torch.float16, 128, 16, False)
    compile_attention(torch.float32, 32, 4096, True)
    for columns in (64, 1000, rms_norm_triton.MAX_COLUMNS):
        block_r, block_c, warps = rms_norm_triton._blocks(columns)
        for kernel in (rms_norm_triton._rms_norm_fwd_kernel, rms_norm_triton._rms_norm_bwd_kernel):
            compile_sm90(kernel, "bf16", {"BLOCK_R": block_r, "BLOCK_C": block_c}, warps, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
