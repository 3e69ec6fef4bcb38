"""Frame-causal attention against a float64 reference, through both backends (Triton in the interpreter)."""

import zlib

import pytest
import torch
import torch.nn.functional as F
from attention_reference import naive_attention, output_and_grads, reference_mask, rel_err

from dreamworld.kernels import attention

BACKENDS = ["triton", "torch"]

# (B, H, Nq, Nk, D, tokens_per_frame, window_frames, causal); blocks in the interpreter are 32 x 16
CASES = {
    "frames-N100": (2, 2, 100, 100, 32, 16, None, True),
    "causal-N37": (1, 2, 37, 37, 16, 1, None, True),
    "frames48": (1, 1, 96, 96, 64, 48, None, True),
    "frames20-window2": (1, 2, 100, 100, 32, 20, 2, True),
    "window1": (1, 1, 64, 64, 16, 8, 1, True),
    "kv-step-window": (2, 2, 16, 160, 32, 16, 3, True),
    "kv-step-no-window": (1, 2, 16, 200, 64, 16, None, True),
    "kv-step-frames48": (1, 1, 48, 200, 64, 48, 2, True),
    "mid-frame-queries": (1, 1, 23, 61, 16, 5, 2, True),
    "one-query": (1, 1, 1, 52, 16, 7, 1, True),
    "causal-default-Nq<Nk": (1, 1, 20, 70, 16, None, None, True),
    "full": (1, 2, 30, 50, 32, None, None, False),
    "frame-wider-than-N": (1, 1, 30, 30, 32, 64, None, True),
    "head-dim-128": (1, 1, 40, 40, 128, 8, None, True),
}


def _inputs(b, h, n_q, n_k, d, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(b, h, n_q, d), (b, h, n_k, d), (b, h, n_k, d), (b, h, n_q, d)]  # q, k, v, grad of the output
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]


def _compare(case, backend, dtype, seed):
    """(inputs, mask, float64 [out, dq, dk, dv], ours in dtype) for one case; checks dtypes and finiteness."""
    b, h, n_q, n_k, d, frame, window, causal = case
    q, k, v, grad = _inputs(b, h, n_q, n_k, d, seed=seed)
    mask = reference_mask(n_q, n_k, frame, window, causal)
    expected = output_and_grads(lambda *x: naive_attention(*x, mask), (q, k, v), grad)
    options = {"tokens_per_frame": frame, "window_frames": window, "causal": causal, "backend": backend}
    ours = output_and_grads(lambda *x: attention(*x, **options), [t.to(dtype) for t in (q, k, v)], grad)
    for x in ours:
        assert x.dtype == dtype and torch.isfinite(x).all()
    return (q, k, v, grad), mask, expected, ours


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_fp32_matches_float64(name, backend):
    _, _, expected, ours = _compare(CASES[name], backend, torch.float32, seed=_seed(name))
    for label, x, ref in zip(("out", "dq", "dk", "dv"), ours, expected, strict=True):
        assert rel_err(x, ref) < 1e-5, f"{label}: {rel_err(x, ref):.2e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["frames-N100", "frames20-window2", "kv-step-window", "mid-frame-queries",
                                  "full"])
def test_fp16_within_twice_torch_fp16_error(name, backend):
    (q, k, v, grad), mask, expected, ours = _compare(CASES[name], backend, torch.float16, _seed(name) + 1)
    torch_fp16 = output_and_grads(lambda *x: naive_attention(*x, mask), [t.half() for t in (q, k, v)], grad)
    for label, x, y, ref in zip(("out", "dq", "dk", "dv"), ours, torch_fp16, expected, strict=True):
        ours_err, torch_err = rel_err(x, ref), rel_err(y, ref)
        assert ours_err <= 2 * torch_err + 1e-5, f"{label}: {ours_err:.2e} vs torch fp16 {torch_err:.2e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("head_dim", [16, 32, 64, 128])
def test_every_head_dim(head_dim, backend):
    n = 33 if head_dim == 128 else 70
    _, _, expected, ours = _compare((2, 2, n, n, head_dim, 12, 3, True), backend, torch.float32, head_dim)
    for x, ref in zip(ours, expected, strict=True):
        assert rel_err(x, ref) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_token_per_frame_is_causal_and_whole_sequence_is_full(backend):
    q, k, v, _ = _inputs(2, 2, 50, 50, 32, dtype=torch.float32, seed=3)
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    full = F.scaled_dot_product_attention(q, k, v)
    for frame in (1, None):
        assert rel_err(attention(q, k, v, tokens_per_frame=frame, backend=backend), causal) < 1e-5
    assert rel_err(attention(q, k, v, tokens_per_frame=50, backend=backend), full) < 1e-5
    assert rel_err(attention(q, k, v, causal=False, backend=backend), full) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_kv_step_equals_last_rows_of_full_pass(backend):
    q, k, v, _ = _inputs(1, 2, 80, 80, 16, dtype=torch.float32, seed=4)
    whole = attention(q, k, v, tokens_per_frame=16, window_frames=2, backend=backend)
    step = attention(q[:, :, -16:], k, v, tokens_per_frame=16, window_frames=2, backend=backend)
    assert rel_err(step, whole[:, :, -16:]) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend):
    gen = torch.Generator().manual_seed(5)
    qkv = torch.randn(2, 40, 3, 2, 32, generator=gen)  # (B, N, 3, H, D) as a fused projection makes it
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, D), strided
    expected = naive_attention(q.double(), k.double(), v.double(), reference_mask(40, 40, 8, None))
    assert rel_err(attention(q, k, v, tokens_per_frame=8, backend=backend), expected) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_explicit_scale(backend):
    q, k, v, _ = _inputs(1, 1, 24, 24, 16, dtype=torch.float32, seed=6)
    expected = naive_attention(q.double(), k.double(), v.double(), reference_mask(24, 24, 4, None), scale=0.5)
    assert rel_err(attention(q, k, v, tokens_per_frame=4, scale=0.5, backend=backend), expected) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("n_q, n_k, head_dim", [(1000, 1000, 64), (16, 1024, 128), (300, 300, 128)])
def test_bf16_on_gpu_within_twice_torch_bf16_error(n_q, n_k, head_dim):
    q, k, v, grad = (t.cuda() for t in _inputs(2, 3, n_q, n_k, head_dim, seed=7))
    mask = reference_mask(n_q, n_k, 16, 4).cuda()
    expected = output_and_grads(lambda *x: naive_attention(*x, mask), (q, k, v), grad)
    bf16 = [t.bfloat16() for t in (q, k, v)]
    ours = output_and_grads(lambda *x: attention(*x, tokens_per_frame=16, window_frames=4, backend="triton"),
                            bf16, grad)
    torch_bf16 = output_and_grads(lambda *x: naive_attention(*x, mask), bf16, grad)
    for x, y, ref in zip(ours, torch_bf16, expected, strict=True):
        assert rel_err(x, ref) <= 2 * rel_err(y, ref) + 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp32_on_gpu_is_not_tf32():
    q, k, v, grad = (t.cuda() for t in _inputs(1, 2, 500, 500, 64, seed=8))
    mask = reference_mask(500, 500, 16, None).cuda()
    expected = output_and_grads(lambda *x: naive_attention(*x, mask), (q, k, v), grad)
    ours = output_and_grads(lambda *x: attention(*x, tokens_per_frame=16, backend="triton"),
                            [t.float() for t in (q, k, v)], grad)
    for x, ref in zip(ours, expected, strict=True):
        assert rel_err(x, ref) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_forward_not_slower_than_dense_masked_sdpa():
    """Skipping invisible blocks should beat SDPA with a dense mask; 1.5x leaves room for timing noise."""
    import triton.testing

    q, k, v = (torch.randn(4, 16, 4096, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    mask = reference_mask(4096, 4096, 64, None).cuda()
    ours = triton.testing.do_bench(lambda: attention(q, k, v, tokens_per_frame=64, backend="triton"),
                                   return_mode="median")
    sdpa = triton.testing.do_bench(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                                   return_mode="median")
    assert ours < 1.5 * sdpa, f"triton {ours:.3f} ms vs SDPA with a dense mask {sdpa:.3f} ms"
