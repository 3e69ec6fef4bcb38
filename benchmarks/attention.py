"""Benchmark the frame-causal attention: forward, backward and the KV-cache step.

On CUDA: dreamworld's Triton kernels ("dreamworld") against PyTorch SDPA with a dense boolean mask (no
mask, so the flash backend, when every key is visible) and FlexAttention with the same block mask, in
bfloat16, timed with triton.testing.do_bench (median). On CPU: the PyTorch path as the model runs it (SDPA
with a prebuilt mask, "sdpa+mask", against the dreamworld dispatcher), at the tiny preset's shapes, timed with
time.perf_counter (median); the JSON records threads, MALLOC_* settings and the load average, since these
cores are shared.
Throughput counts only visible query-key pairs: 4 * B * H * pairs * D FLOPs forward, 2.5x that backward.

    python benchmarks/attention.py [--json benchmarks/results/attention_cuda.json]
"""

import dataclasses
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import tyro
from common import cpu_name, triton_version, write_results

from dreamworld.kernels import attention, frame_mask


@dataclasses.dataclass
class Args:
    json: Path | None = None
    """write the results here as JSON"""
    device: str = "auto"
    """"cuda", "cpu", or "auto" (CUDA when available)"""
    window_frames: int | None = None
    """sliding window in frames (None: attend to every earlier frame)"""
    flex: bool = True
    """on CUDA, also time FlexAttention (compiles once per shape)"""
    repeats: int = 7
    """on CPU, timed repetitions per measurement (median reported)"""
    threads: int | None = None
    """torch CPU threads (None: torch's default)"""
    lengths: tuple[int, ...] = (1024, 4096, 16384)
    """on CUDA, sequence lengths N"""
    tokens: int = 16384
    """on CUDA, tokens per batch: batch = tokens // N (at least 1)"""
    width: int = 2048
    """on CUDA, model width: heads = width // D"""
    head_dims: tuple[int, ...] = (64, 128)
    """on CUDA, head dims D"""
    frames: tuple[int, ...] = (16, 64, 256)
    """on CUDA, tokens per frame P (the KV-cache step has P queries)"""


@dataclasses.dataclass
class Row:
    """One measurement."""

    case: str
    impl: str
    batch: int
    heads: int
    n_q: int
    n_k: int
    head_dim: int
    tokens_per_frame: int
    ms: float | None
    flop_per_s: float | None


def visible_pairs(n_q: int, n_k: int, frame: int, window: int | None, device: str = "cpu") -> int:
    """Query-key pairs the frame-causal mask lets through, per (batch, head)."""
    return int(frame_mask(n_q, n_k, frame, window, device=device).sum())


def cpu_median_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each fn() in milliseconds, after two warm-up calls each.

    The functions take turns within every repetition, so a change in the machine's load hits all alike.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(2):
        for fn in fns.values():
            fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def _forward_and_backward(fn: Callable, q, k, v, grad) -> Callable[[], None]:
    def step():
        leaves = [t.detach().requires_grad_() for t in (q, k, v)]
        fn(*leaves).backward(grad)

    return step


CPU_SHAPES = (
    # (what, batch, heads, frames, tokens per frame, head dim): the tiny preset as training and dreams run it
    ("dynamics block", 8, 2, 8, 64, 64),  # 8 sequences of 8 frames x 64 tokens
    ("token decoder", 64, 2, 8, 8, 64),  # every frame of that batch: 64 tokens in 8 groups of 8
    ("dream step", 256, 2, 8, 64, 64),  # 256 dreams, one frame of queries against a full window
)


def cpu_rows(args: Args) -> list[Row]:
    """The PyTorch path at the tiny preset's shapes, in float32 and bfloat16: SDPA with the prebuilt mask
    ("sdpa+mask") against the dreamworld dispatcher, forward, forward + backward and the KV-cache step."""
    rows = []
    for what, batch, heads, frames, frame, head_dim in CPU_SHAPES:
        n = frames * frame
        cases = (("kv-step", frame),) if what == "dream step" else (("fwd", n), ("fwd+bwd", n))
        for dtype in (torch.float32, torch.bfloat16):
            gen = torch.Generator().manual_seed(0)
            q, k, v, grad = (torch.randn(batch, heads, n, head_dim, generator=gen).to(dtype) for _ in range(4))
            for case, n_q in cases:
                mask = frame_mask(n_q, n, frame, args.window_frames)
                options = {"tokens_per_frame": frame, "window_frames": args.window_frames, "backend": "torch"}
                impls = {
                    "sdpa+mask": partial(F.scaled_dot_product_attention, attn_mask=mask),
                    "dreamworld": partial(attention, **options),
                }
                flops = 4 * batch * heads * visible_pairs(n_q, n, frame, args.window_frames) * head_dim
                q_case = q[:, :, n - n_q:]  # (B, H, n_q, D): the last n_q positions
                if case == "fwd+bwd":
                    steps = {impl: _forward_and_backward(fn, q_case, k, v, grad) for impl, fn in impls.items()}
                    timings, work = cpu_median_ms(steps, args.repeats), 3.5 * flops
                else:
                    with torch.no_grad():
                        steps = {impl: partial(fn, q_case, k, v) for impl, fn in impls.items()}
                        timings, work = cpu_median_ms(steps, args.repeats), flops
                for impl, ms in timings.items():
                    rows.append(Row(f"{what} {case}", f"{impl} {str(dtype)[6:]}", batch, heads, n_q, n, head_dim,
                                    frame, ms, work / (ms * 1e-3)))
    return rows


def _gpu_impls(args: Args, n_q: int, n_k: int, frame: int, device: str) -> dict[str, Callable]:
    """Name -> fn(q, k, v) for the CUDA comparison at one layout."""
    window = args.window_frames
    mask = frame_mask(n_q, n_k, frame, window, device=device)
    impls = {
        "dreamworld": lambda q, k, v: attention(
            q, k, v, tokens_per_frame=frame, window_frames=window, backend="triton"),
    }
    if bool(mask.all()):
        impls["sdpa flash"] = lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
    else:
        impls["sdpa+mask"] = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if args.flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        offset = n_k - n_q

        def mask_mod(b, h, q_idx, kv_idx):
            q_frame, k_frame = (q_idx + offset) // frame, kv_idx // frame
            visible = k_frame <= q_frame
            return visible if window is None else visible & (k_frame > q_frame - window)

        block_mask = create_block_mask(mask_mod, None, None, n_q, n_k, device=device)
        flex = torch.compile(flex_attention, dynamic=False)  # one compile per shape (limit set in gpu_rows)
        impls["flex"] = lambda q, k, v: flex(q, k, v, block_mask=block_mask)
    return impls


def _gpu_time(fn: Callable, q, k, v, grad, backward: bool) -> float | None:
    """do_bench median in ms; None (with a note printed) when the implementation fails, e.g. out of memory."""
    import triton.testing

    try:
        if not backward:
            q, k, v = (t.detach() for t in (q, k, v))  # inference: no graph, no saved tensors
            with torch.no_grad():
                return triton.testing.do_bench(lambda: fn(q, k, v), return_mode="median")
        out = fn(q, k, v)
        return triton.testing.do_bench(lambda: out.backward(grad, retain_graph=True), grad_to_none=[q, k, v],
                                       return_mode="median")
    except Exception as error:  # one failing comparison must not end the whole run
        print(f"  failed: {type(error).__name__}: {str(error)[:200]}", flush=True)
        torch.cuda.empty_cache()
        return None


def gpu_rows(args: Args, device: str = "cuda") -> list[Row]:
    """bf16 forward, backward and KV-cache step over N x D x tokens_per_frame."""
    if args.flex:  # every shape compiles FlexAttention anew; past dynamo's default limit it would run eagerly
        config = torch._dynamo.config
        setattr(config, "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit", 256)
    rows = []
    for n in args.lengths:
        for head_dim in args.head_dims:
            batch, heads = max(1, args.tokens // n), max(1, args.width // head_dim)
            gen = torch.Generator(device=device).manual_seed(0)
            q, k, v, grad = (torch.randn(batch, heads, n, head_dim, generator=gen, device=device,
                                         dtype=torch.bfloat16).requires_grad_() for _ in range(4))
            for frame in args.frames:
                for case, n_q in (("fwd", n), ("bwd", n), ("kv-step", frame)):
                    pairs = visible_pairs(n_q, n, frame, args.window_frames, device=device)
                    flops = 4 * batch * heads * pairs * head_dim
                    work = 2.5 * flops if case == "bwd" else flops
                    # (B, H, n_q, D): the last n_q positions, as a KV-cache step gets them
                    q_case = q.detach()[:, :, n - n_q:].contiguous().requires_grad_()
                    grad_case = grad.detach()[:, :, n - n_q:].contiguous()  # (B, H, n_q, D)
                    for impl, fn in _gpu_impls(args, n_q, n, frame, device).items():
                        ms = _gpu_time(fn, q_case, k, v, grad_case, backward=case == "bwd")
                        rate = None if ms is None else work / (ms * 1e-3)
                        rows.append(Row(case, impl, batch, heads, n_q, n, head_dim, frame, ms, rate))
                        print(f"{case} {impl} N={n} D={head_dim} P={frame}: {ms} ms", flush=True)
    return rows


def environment(device: str) -> dict:
    """Device, versions, date and the settings a reader needs to compare runs."""
    name = torch.cuda.get_device_name() if device == "cuda" else f"{cpu_name()} ({os.cpu_count()} cores)"
    return {
        "device": name,
        "torch": torch.__version__,
        "triton": triton_version(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "allocator": {key: os.environ[key] for key in sorted(os.environ) if key.startswith("MALLOC_")},
    }


def print_table(rows: list[Row], device: str) -> None:
    """A rich table when rich is installed, plain text otherwise."""
    unit, scale = ("TFLOP/s", 1e12) if device == "cuda" else ("GFLOP/s", 1e9)
    header = ["case", "impl", "B", "H", "Nq", "Nk", "D", "P", "ms", unit]
    body = [[r.case, r.impl, r.batch, r.heads, r.n_q, r.n_k, r.head_dim, r.tokens_per_frame,
             "failed" if r.ms is None else f"{r.ms:.3f}",
             "-" if r.flop_per_s is None else f"{r.flop_per_s / scale:.1f}"] for r in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for line in [header, *body]:
            print("  ".join(f"{cell!s:>10}" for cell in line))
        return
    table = Table(title=f"frame-causal attention on {device}")
    for column in header:
        table.add_column(column, justify="left" if column in ("case", "impl") else "right")
    for line in body:
        table.add_row(*map(str, line))
    Console().print(table)


def main(args: Args) -> None:
    """Run the benchmark for the chosen device, print the table, write JSON if asked."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    env = environment(device)  # taken before the run: its load average says how busy the machine was
    rows = gpu_rows(args) if device == "cuda" else cpu_rows(args)
    print_table(rows, device)
    if args.json is not None:
        write_results(args.json, {**env, "window_frames": args.window_frames,
                                  "rows": [dataclasses.asdict(r) for r in rows]})


if __name__ == "__main__":
    main(tyro.cli(Args))
