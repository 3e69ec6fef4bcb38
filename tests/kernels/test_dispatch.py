"""Argument checks and the choice of backend."""

import pytest
import torch

from dreamworld.kernels import attention, dispatch, frame_mask


def _qkv(n_q=8, n_k=8, d=16, dtype=torch.float32):
    return torch.randn(1, 2, n_q, d, dtype=dtype), torch.randn(1, 2, n_k, d, dtype=dtype), torch.randn(
        1, 2, n_k, d, dtype=dtype)


@pytest.mark.parametrize("change, message", [
    (lambda q, k, v: (q[0], k, v), r"q has 3 dims, expected \(B, H, N, D\)"),
    (lambda q, k, v: (q, k.unsqueeze(0), v), r"k has 5 dims, expected \(B, H, N, D\)"),
    (lambda q, k, v: (q.numpy(), k, v), "q is a ndarray, expected a torch.Tensor"),
    (lambda q, k, v: (q, k.double(), v), "q is torch.float32 but k is torch.float64: cast them to one dtype"),
    (lambda q, k, v: (q.double(), k.double(), v.double()), "dtype torch.float64 unsupported"),
    (lambda q, k, v: (q[..., :12], k[..., :12], v[..., :12]), "head dim 12 unsupported: use 16, 32, 64 or"),
    (lambda q, k, v: (q, k[..., :8].repeat(1, 1, 1, 4), v), r"k has shape \(1, 2, 8, 32\) but v has"),
    (lambda q, k, v: (q.repeat(1, 1, 2, 1), k, v), "q has 16 positions but k has 8: .* Nq must be <= Nk"),
    (lambda q, k, v: (q[:, :1], k, v), r"q has \(B, H\) = \(1, 1\) but k has \(1, 2\)"),
    (lambda q, k, v: (q[:, :, :0], k, v), "B, H and N must be at least 1"),
])
def test_bad_tensors_raise_clear_errors(change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        attention(*change(*_qkv()), tokens_per_frame=4)


def test_head_dim_mismatch():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="q has head dim 16 but k has 32"):
        attention(q, torch.randn(1, 2, 8, 32), torch.randn(1, 2, 8, 32))


@pytest.mark.parametrize("kwargs, message", [
    ({"tokens_per_frame": 0}, "tokens_per_frame=0 must be a positive int"),
    ({"tokens_per_frame": 2.0}, "tokens_per_frame=2.0 must be a positive int"),
    ({"window_frames": -1}, "window_frames=-1 must be a positive int"),
    ({"window_frames": 2, "causal": False}, "window_frames needs causal=True"),
    ({"backend": "cuda"}, "backend='cuda' is not a backend: use 'torch' or 'triton'"),
])
def test_bad_options_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        attention(*_qkv(), **kwargs)


def test_mismatched_devices():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="q is on cpu but k is on meta: move them to one device"):
        attention(q, k.to("meta"), v)


def _spy(monkeypatch):
    calls = []
    real = dispatch.attention_torch

    def spy(*args):
        calls.append("torch")
        return real(*args)

    monkeypatch.setattr(dispatch, "attention_torch", spy)
    return calls


def test_cpu_tensors_use_torch_unless_triton_is_asked_for(monkeypatch):
    calls = _spy(monkeypatch)
    attention(*_qkv(), tokens_per_frame=4)
    assert calls == ["torch"]  # even with TRITON_INTERPRET=1 (set by conftest) CPU tensors go to PyTorch
    monkeypatch.setenv("DREAMWORLD_ATTENTION", "triton")
    attention(*_qkv(), tokens_per_frame=4)
    assert calls == ["torch"]  # the interpreter ran the Triton kernels
    attention(*_qkv(), tokens_per_frame=4, backend="torch")  # the argument beats the environment
    assert calls == ["torch", "torch"]


def test_cpu_without_interpreter_uses_torch_and_refuses_triton(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    calls = _spy(monkeypatch)
    attention(*_qkv(), tokens_per_frame=4)
    assert calls == ["torch"]
    with pytest.raises(RuntimeError, match="Triton cannot run on cpu tensors: .* TRITON_INTERPRET=1"):
        attention(*_qkv(), backend="triton")
    monkeypatch.setenv("DREAMWORLD_ATTENTION", "triton")
    with pytest.raises(RuntimeError, match="DREAMWORLD_ATTENTION='triton' but Triton cannot run"):
        attention(*_qkv())
    monkeypatch.setenv("DREAMWORLD_ATTENTION", "fast")
    with pytest.raises(ValueError, match="DREAMWORLD_ATTENTION='fast' is not a backend"):
        attention(*_qkv())


def test_torch_path_uses_sdpa_fast_paths_when_the_mask_allows():
    sdpa_mask = dispatch.attention_torch.__globals__["_sdpa_mask"]
    assert sdpa_mask(16, 16, 16, None, torch.device("cpu")) == (None, False)  # one frame: full attention
    assert sdpa_mask(16, 64, 16, None, torch.device("cpu")) == (None, False)  # KV step, no window
    assert sdpa_mask(32, 32, 1, None, torch.device("cpu")) == (None, True)  # square plain causal
    mask, is_causal = sdpa_mask(16, 32, 1, None, torch.device("cpu"))  # causal, Nq < Nk: bottom-right
    assert not is_causal and torch.equal(mask, frame_mask(16, 32, 1))
    assert mask[0, 16] and not mask[0, 17]


def test_frame_mask():
    expected = torch.tensor([
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(frame_mask(6, 6, 2, 2), expected)
    assert torch.equal(frame_mask(3, 6, 2, 2), expected[3:])
