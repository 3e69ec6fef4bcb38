"""The compiled Triton kernels on a CUDA device, with the launch configs a GPU gets (larger blocks than the
interpreter's, autotuned where a GPU is present): every interpreter case again, plus shapes that span many blocks.
On a CUDA machine the conftest leaves TRITON_INTERPRET unset, so they compile: `pytest -m gpu tests/kernels`."""

import pytest
import torch
from attention_reference import naive_attention, output_and_grads, reference_mask, rel_err
from test_attention import CASES, _seed

from dreamworld.kernels import attention, rms_norm

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

# (B, H, Nq, Nk, D, tokens_per_frame, window_frames, causal): sizes a GPU block grid splits many ways
GPU_CASES = {
    **CASES,
    "model-tiny-train": (8, 4, 256, 256, 64, 16, 8, True),  # 16 frames x 16 tokens, window 8
    "model-small-train": (4, 6, 1024, 1024, 64, 64, 8, True),  # 16 frames x 64 tokens
    "model-kv-step": (16, 4, 16, 128, 64, 16, 8, True),  # one frame against 8 cached frames
    "long-window": (1, 2, 2048, 2048, 128, 16, 32, True),
    "ragged-frames": (2, 2, 777, 777, 32, 37, 5, True),
}


def _cuda_inputs(b, h, n_q, n_k, d, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    shapes = [(b, h, n_q, d), (b, h, n_k, d), (b, h, n_k, d), (b, h, n_q, d)]  # q, k, v, grad of the output
    return [torch.randn(s, generator=gen, dtype=torch.float64, device="cuda") for s in shapes]


@pytest.mark.parametrize("name", list(GPU_CASES))
def test_fp32_on_gpu_matches_float64(name):
    b, h, n_q, n_k, d, frame, window, causal = GPU_CASES[name]
    q, k, v, grad = _cuda_inputs(b, h, n_q, n_k, d, _seed(name))
    mask = reference_mask(n_q, n_k, frame, window, causal).cuda()
    expected = output_and_grads(lambda *x: naive_attention(*x, mask), (q, k, v), grad)
    options = {"tokens_per_frame": frame, "window_frames": window, "causal": causal, "backend": "triton"}
    ours = output_and_grads(lambda *x: attention(*x, **options), [t.float() for t in (q, k, v)], grad)
    for label, x, ref in zip(("out", "dq", "dk", "dv"), ours, expected, strict=True):
        assert x.dtype == torch.float32 and torch.isfinite(x).all(), label
        assert rel_err(x, ref) < 1e-5, f"{label}: {rel_err(x, ref):.2e}"


@pytest.mark.parametrize("name", ["frames-N100", "kv-step-window", "model-tiny-train", "model-small-train",
                                  "ragged-frames"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_gpu_within_twice_torch_error(name, dtype):
    b, h, n_q, n_k, d, frame, window, causal = GPU_CASES[name]
    q, k, v, grad = _cuda_inputs(b, h, n_q, n_k, d, _seed(name) + 1)
    mask = reference_mask(n_q, n_k, frame, window, causal).cuda()
    expected = output_and_grads(lambda *x: naive_attention(*x, mask), (q, k, v), grad)
    low = [t.to(dtype) for t in (q, k, v)]
    options = {"tokens_per_frame": frame, "window_frames": window, "causal": causal, "backend": "triton"}
    ours = output_and_grads(lambda *x: attention(*x, **options), low, grad)
    torch_low = output_and_grads(lambda *x: naive_attention(*x, mask), low, grad)
    for label, x, y, ref in zip(("out", "dq", "dk", "dv"), ours, torch_low, expected, strict=True):
        assert rel_err(x, ref) <= 2 * rel_err(y, ref) + 1e-5, f"{label}: {rel_err(x, ref):.2e} vs {rel_err(y, ref):.2e}"


def test_kv_step_on_gpu_equals_last_rows_of_full_pass():
    q, k, v, _ = (t.float() for t in _cuda_inputs(2, 4, 512, 512, 64, seed=11))
    whole = attention(q, k, v, tokens_per_frame=64, window_frames=4, backend="triton")
    step = attention(q[:, :, -64:], k, v, tokens_per_frame=64, window_frames=4, backend="triton")
    assert rel_err(step, whole[:, :, -64:]) < 1e-6


@pytest.mark.parametrize("shape", [(3, 5, 40), (4096, 256), (2, 8192), (64, 16, 384)])
def test_rms_norm_fp32_on_gpu(shape):
    gen = torch.Generator(device="cuda").manual_seed(sum(shape))
    x = 3 * torch.randn(shape, generator=gen, dtype=torch.float64, device="cuda")
    weight = 1 + 0.5 * torch.randn(shape[-1], generator=gen, dtype=torch.float64, device="cuda")
    grad = torch.randn(shape, generator=gen, dtype=torch.float64, device="cuda")

    def reference(x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight

    expected = output_and_grads(reference, (x, weight), grad)
    ours = output_and_grads(lambda *a: rms_norm(*a, backend="triton"), (x.float(), weight.float()), grad)
    for label, got, ref in zip(("y", "dx", "dweight"), ours, expected, strict=True):
        assert rel_err(got, ref) < 1e-5, f"{label}: {rel_err(got, ref):.2e}"
