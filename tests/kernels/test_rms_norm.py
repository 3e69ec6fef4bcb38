"""Fused RMSNorm forward and backward against float64, through both backends."""

import pytest
import torch
from attention_reference import output_and_grads, rel_err

from dreamworld.kernels import RMSNorm, rms_norm

BACKENDS = ["triton", "torch"]


def _reference(x, weight, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _inputs(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    weight = 1 + 0.5 * torch.randn(shape[-1], generator=gen, dtype=torch.float64)
    return x, weight, torch.randn(shape, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(3, 5, 40), (700, 16), (2, 1000), (9, 64)])
def test_fp32_matches_float64(shape, backend):
    x, weight, grad = _inputs(shape, seed=sum(shape))
    expected = output_and_grads(_reference, (x, weight), grad)
    ours = output_and_grads(lambda *a: rms_norm(*a, backend=backend), (x.float(), weight.float()), grad)
    for label, got, ref in zip(("y", "dx", "dweight"), ours, expected, strict=True):
        assert got.dtype == torch.float32 and got.shape == ref.shape
        assert rel_err(got, ref) < 1e-5, f"{label}: {rel_err(got, ref):.2e}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_within_twice_torch_fp16_error(backend):
    x, weight, grad = _inputs((4, 33, 96), seed=1)
    expected = output_and_grads(_reference, (x, weight), grad)
    ours = output_and_grads(lambda *a: rms_norm(*a, backend=backend), (x.half(), weight.half()), grad)
    torch_fp16 = output_and_grads(_reference, (x.half(), weight.half()), grad)
    for got, fp16, ref in zip(ours, torch_fp16, expected, strict=True):
        assert got.dtype == torch.float16
        assert rel_err(got, ref) <= 2 * rel_err(fp16, ref) + 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_module_and_mixed_dtypes(backend, monkeypatch):
    monkeypatch.setenv("DREAMWORLD_RMS_NORM", backend)
    norm = RMSNorm(48)
    with torch.no_grad():
        norm.weight.mul_(torch.linspace(0.5, 1.5, 48))
    x = torch.randn(2, 7, 48, dtype=torch.float16, requires_grad=True)  # float16 input, float32 weight
    y = norm(x)
    y.float().sum().backward()
    assert y.dtype == x.grad.dtype == torch.float16 and norm.weight.grad.dtype == torch.float32
    expected = _reference(x.double(), norm.weight.double(), norm.eps)
    assert rel_err(y, expected) < 2e-3
    assert "48, eps=1e-06" in repr(norm)


def test_wide_rows_fall_back_to_torch_unless_triton_is_forced():
    x, weight = torch.randn(2, 9000), torch.ones(9000)
    assert rel_err(rms_norm(x, weight), _reference(x.double(), weight.double())) < 1e-5
    with pytest.raises(ValueError, match="at most 8192; use backend='torch'"):
        rms_norm(x, weight, backend="triton")


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"weight must be \(C,\) with C = x.shape\[-1\]"):
        rms_norm(torch.randn(3, 8), torch.ones(4))
    with pytest.raises(TypeError, match="use float16, bfloat16 or float32"):
        rms_norm(torch.randn(3, 8, dtype=torch.float64), torch.ones(8))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_on_gpu():
    x, weight, grad = (t.cuda() for t in _inputs((64, 256, 384), seed=2))
    expected = output_and_grads(_reference, (x, weight), grad)
    bf16 = (x.bfloat16(), weight.bfloat16())
    ours = output_and_grads(lambda *a: rms_norm(*a, backend="triton"), bf16, grad)
    torch_bf16 = output_and_grads(_reference, bf16, grad)
    for got, bf16, ref in zip(ours, torch_bf16, expected, strict=True):
        assert rel_err(got, ref) <= 2 * rel_err(bf16, ref) + 1e-5
