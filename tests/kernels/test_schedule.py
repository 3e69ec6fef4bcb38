"""Block skipping: the schedules are exact, and the kernels load nothing outside them."""

import itertools

import pytest
import torch
from attention_reference import naive_attention, output_and_grads, reference_mask, rel_err

from dreamworld.kernels import attention
from dreamworld.kernels.attention_bwd import backward_blocks
from dreamworld.kernels.attention_fwd import forward_blocks
from dreamworld.kernels.schedule import key_schedule, query_schedule

# (Nq, Nk, tokens_per_frame, window_frames)
SIZES, FRAMES, WINDOWS = (1, 16, 37, 100, 128), (1, 5, 16, 48), (None, 1, 3)
LAYOUTS = [
    (n_q, n_k, frame, window)
    for n_k, n_q, frame, window in itertools.product(SIZES[2:], SIZES, FRAMES, WINDOWS)
    if n_q <= n_k
]


def _check_blocks(schedule, visible: torch.Tensor, block_rows: int, block_cols: int):
    """Every schedule row against the brute-force visibility of (rows, cols)."""
    n_rows, n_cols = visible.shape
    for r, (start, full_start, full_end, end) in enumerate(schedule):
        rows = visible[r * block_rows:(r + 1) * block_rows]  # (<= block_rows, n_cols)
        seen = rows.any(0).nonzero().flatten()
        if seen.numel() == 0:
            assert (start, end) == (0, 0)
            continue
        assert start <= full_start <= full_end <= end
        assert start <= seen.min() and seen.max() < end, "a visible column lies outside the schedule"
        for c in range(start, end, block_cols):
            block = rows[:, c:c + block_cols]
            assert block.any(), f"block at column {c} is loaded but nothing in it is visible"
            fully_visible = block.shape[1] == block_cols and bool(block.all())
            assert fully_visible == (full_start <= c < full_end), f"block at column {c} misclassified"


@pytest.mark.parametrize("block_m, block_n", [(32, 16), (16, 64), (64, 32)])
def test_key_schedule_is_exact(block_m, block_n):
    for n_q, n_k, frame, window in LAYOUTS:
        visible = reference_mask(n_q, n_k, frame, window)  # (Nq, Nk)
        _check_blocks(key_schedule(n_q, n_k, frame, window, block_m, block_n), visible, block_m, block_n)


@pytest.mark.parametrize("block_n, block_m", [(32, 16), (16, 64), (64, 32)])
def test_query_schedule_is_exact(block_n, block_m):
    for n_q, n_k, frame, window in LAYOUTS:
        visible = reference_mask(n_q, n_k, frame, window).T  # (Nk, Nq)
        _check_blocks(query_schedule(n_q, n_k, frame, window, block_n, block_m), visible, block_n, block_m)


def test_window_skips_most_blocks():
    """A long sequence with a 2-frame window loads a small, constant number of key blocks per query block."""
    schedule = key_schedule(1024, 1024, 16, 2, 32, 16)
    assert max(end - start for start, _, _, end in schedule) <= 48
    assert sum(full_end - full_start for _, full_start, full_end, _ in schedule) > 0


def _poison(t: torch.Tensor, keep: slice) -> torch.Tensor:
    """A copy of t (B, H, N, D) with NaN at every position along N outside `keep`."""
    out = torch.full_like(t, float("nan"))
    out[:, :, keep] = t[:, :, keep]
    return out


@pytest.mark.parametrize("n_q, n_k, frame, window", [(16, 160, 16, 2), (30, 200, 20, 3), (1, 120, 8, 2)])
def test_forward_and_dq_never_load_skipped_key_blocks(n_q, n_k, frame, window):
    """NaN in every key/value block outside the (single) query block's schedule must not reach out or dq."""
    block_m, block_n, _, _ = forward_blocks(32, n_q, torch.float32)
    _, (q_m, q_n, _, _) = backward_blocks(32, n_q, torch.float32)
    assert n_q <= block_m and (block_m, block_n) == (q_m, q_n)  # one query block, one schedule for both
    ((start, _, _, end),) = key_schedule(n_q, n_k, frame, window, block_m, block_n)
    assert end - start < n_k, "nothing to skip in this layout"
    gen = torch.Generator().manual_seed(n_k)
    q, grad = torch.randn(2, 1, 2, n_q, 32, generator=gen)
    k, v = torch.randn(2, 1, 2, n_k, 32, generator=gen)
    out, dq, _, _ = output_and_grads(
        lambda *x: attention(*x, tokens_per_frame=frame, window_frames=window, backend="triton"),
        (q, _poison(k, slice(start, end)), _poison(v, slice(start, end))), grad,
    )
    mask = reference_mask(n_q, n_k, frame, window)
    float64 = [t.double() for t in (q, k, v)]
    expected = output_and_grads(lambda *x: naive_attention(*x, mask), float64, grad.double())
    assert rel_err(out, expected[0]) < 1e-5 and rel_err(dq, expected[1]) < 1e-5


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter's numpy warns about the NaN rows
def test_dkdv_never_loads_skipped_query_blocks():
    """NaN in every query row the first key block cannot see must not reach that block's dk and dv."""
    n, frame, window = 128, 16, 1
    (kv_n, kv_m, _, _), _ = backward_blocks(32, n, torch.float32)
    start, _, _, end = query_schedule(n, n, frame, window, kv_n, kv_m)[0]
    assert start == 0 and end < n
    gen = torch.Generator().manual_seed(1)
    q, k, v, grad = torch.randn(4, 1, 2, n, 32, generator=gen)
    _, _, dk, dv = output_and_grads(
        lambda *x: attention(*x, tokens_per_frame=frame, window_frames=window, backend="triton"),
        (_poison(q, slice(0, end)), k, v), _poison(grad, slice(0, end)),
    )
    mask = reference_mask(n, n, frame, window)
    float64 = [t.double() for t in (q, k, v)]
    expected = output_and_grads(lambda *x: naive_attention(*x, mask), float64, grad.double())
    assert rel_err(dk[:, :, :kv_n], expected[2][:, :, :kv_n]) < 1e-5
    assert rel_err(dv[:, :, :kv_n], expected[3][:, :, :kv_n]) < 1e-5
