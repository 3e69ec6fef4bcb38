"""Which key blocks a query block sees (and the reverse) under the frame-causal mask, in pure Python.

Position i belongs to frame i // P. The Nq queries are the last Nq of the Nk positions, so query row j sits
at position Nk - Nq + j. A query sees a key when key_frame <= query_frame and, with a window of W frames,
key_frame > query_frame - W. Full attention is the special case P >= Nk (everything is frame 0).

The Triton kernels read their loop bounds from the tables built here, so a block that no query of a program
can see is never loaded, and only the blocks at the edge of the visible region pay for a mask.
"""

from functools import lru_cache

import torch


def visible_keys(q_lo: int, q_hi: int, n_q: int, n_k: int, frame: int, window: int | None):
    """Key ranges for query rows [q_lo, q_hi): (lo, hi) seen by any row, (full_lo, full_hi) seen by all.

    Returns (lo, full_lo, full_hi, hi); the full range is empty when full_lo >= full_hi.
    """
    offset = n_k - n_q
    first, last = (offset + q_lo) // frame, (offset + q_hi - 1) // frame
    hi = min((last + 1) * frame, n_k)
    full_hi = min((first + 1) * frame, n_k)
    lo = 0 if window is None else max(0, (first - window + 1) * frame)
    full_lo = 0 if window is None else max(0, (last - window + 1) * frame)
    return lo, full_lo, full_hi, hi


def visible_queries(k_lo: int, k_hi: int, n_q: int, n_k: int, frame: int, window: int | None):
    """Query-row ranges for keys [k_lo, k_hi): (lo, hi) seeing some key, (full_lo, full_hi) seeing all keys.

    Returns (lo, full_lo, full_hi, hi), rows clipped to [0, n_q); the full range is empty when
    full_lo >= full_hi.
    """
    offset = n_k - n_q
    first, last = k_lo // frame, (k_hi - 1) // frame

    def row(position: int) -> int:
        return min(max(position - offset, 0), n_q)

    lo, full_lo = row(first * frame), row(last * frame)
    hi = n_q if window is None else row((last + window) * frame)
    full_hi = n_q if window is None else row((first + window) * frame)
    return lo, full_lo, full_hi, hi


def block_schedule(ranges: tuple[int, int, int, int], block: int) -> tuple[int, int, int, int]:
    """Align (lo, full_lo, full_hi, hi) to blocks of `block` columns: [start, full_start, full_end, end).

    Every block in [full_start, full_end) lies inside the full range; the rest of [start, end) is masked.
    An empty visible range gives (0, 0, 0, 0).
    """
    lo, full_lo, full_hi, hi = ranges
    if hi <= lo:
        return 0, 0, 0, 0
    start = lo // block * block
    end = -(-hi // block) * block
    full_start = min(max(-(-full_lo // block) * block, start), end)
    full_end = min(max(full_hi // block * block, full_start), end)
    return start, full_start, full_end, end


def key_schedule(n_q: int, n_k: int, frame: int, window: int | None, block_m: int, block_n: int):
    """For each block of `block_m` query rows, the key-block schedule in units of keys (forward and dQ)."""
    return [
        block_schedule(visible_keys(m, min(m + block_m, n_q), n_q, n_k, frame, window), block_n)
        for m in range(0, n_q, block_m)
    ]


def query_schedule(n_q: int, n_k: int, frame: int, window: int | None, block_n: int, block_m: int):
    """For each block of `block_n` keys, the query-block schedule in units of query rows (dK/dV)."""
    return [
        block_schedule(visible_queries(n, min(n + block_n, n_k), n_q, n_k, frame, window), block_m)
        for n in range(0, n_k, block_n)
    ]


@lru_cache(maxsize=256)
def key_schedule_tensor(n_q, n_k, frame, window, block_m, block_n, device: torch.device) -> torch.Tensor:
    """`key_schedule` as an int32 tensor of shape (cdiv(n_q, block_m), 4) on `device`, cached.

    Row r is [start, full_start, full_end, end) for program r: blocks in [start, full_start) and
    [full_end, end) need the mask, blocks in [full_start, full_end) are visible to every row of the program.
    """
    rows = key_schedule(n_q, n_k, frame, window, block_m, block_n)
    return torch.tensor(rows, dtype=torch.int32, device=device)


@lru_cache(maxsize=256)
def query_schedule_tensor(n_q, n_k, frame, window, block_n, block_m, device: torch.device) -> torch.Tensor:
    """`query_schedule` as an int32 tensor of shape (cdiv(n_k, block_n), 4) on `device`, cached."""
    rows = query_schedule(n_q, n_k, frame, window, block_n, block_m)
    return torch.tensor(rows, dtype=torch.int32, device=device)
