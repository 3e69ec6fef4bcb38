"""Benchmark: training throughput (frames/s) of the tokenizer and the dynamics for each preset and precision, on
random data.

    python benchmarks/train.py [--presets tiny small] [--precisions float32 bfloat16] [--steps 20]
        [--device cpu|cuda] [--no-compile] [--optimizers fused for-loop] [--json benchmarks/results/train_cpu.json]

Frames/s counts frames whose loss is computed per second: tokenizer batch frames, dynamics batch x sequence
frames. bfloat16 means autocast, as `dreamworld train --dynamics.precision bfloat16` runs it (it is timed only where the
device computes bfloat16 natively). With compiling on (the default), the dynamics step is timed again under
torch.compile, as `dreamworld train --dynamics.compile on` runs it, and the first compiled step's time (the compile) is
reported. Each step updates with `phases.adamw`, the AdamW `dreamworld train` uses (fused); `--optimizers fused
for-loop` times the for-loop one as well, right after it. Allocator settings (MALLOC_*) and thread count are
printed and saved.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
import tyro
from common import cpu_name, triton_version, write_results
from rich.console import Console
from rich.table import Table

from dreamworld.model.precision import Precision, autocast, native_bf16
from dreamworld.model.presets import preset
from dreamworld.model.world_model import WorldModel
from dreamworld.train.compiling import compiled, compiler_missing
from dreamworld.train.config import TrainConfig
from dreamworld.train.phases import adamw
from dreamworld.train.trainer import dynamics_loss


@dataclass
class Args:
    presets: list[str] = field(default_factory=lambda: ["tiny", "small"])
    """presets to time"""
    precisions: list[Precision] = field(default_factory=lambda: ["float32", "bfloat16"])
    """forward-pass precisions to time (bfloat16 is skipped where the CPU lacks native bfloat16)"""
    steps: int = 20
    """timed optimisation steps per measurement (after 3 warm-up steps)"""
    threads: int | None = None
    """torch threads (default: torch's choice)"""
    device: str = "cpu"
    """where to train: "cpu" or "cuda" (CUDA steps are timed with a synchronize after each)"""
    optimizers: list[Literal["fused", "for-loop"]] = field(default_factory=lambda: ["fused"])
    """AdamW implementations to time (fused: what training uses where the device has it)"""
    compile: bool = True
    """also time the dynamics step compiled (dreamworld.train.compiling), where the device can compile"""
    json: str | None = None
    """write the results to this JSON file"""


def _time_steps(step_fn, steps: int, device: str) -> float:
    """Median seconds per call of `step_fn` over `steps` calls, after warm-up (on CUDA, each call waits for the
    device to finish)."""

    def timed() -> float:
        start = time.perf_counter()
        step_fn()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(3):
        timed()
    times = [timed() for _ in range(steps)]
    return statistics.median(times)


def bench_preset(name: str, precision: str, steps: int, device: str = "cpu", compile_step: bool = False,
                 optimizer: str = "fused") -> dict:
    """Tokenizer and dynamics training steps/s and frames/s for one preset with its default batch sizes, forward
    passes at `precision`, on `device`, updates by the `optimizer` AdamW; with `compile_step` the dynamics step
    compiled as well."""
    cfg = preset(name)
    train = TrainConfig()
    model = WorldModel(cfg).to(device)
    n, vocab = model.tokenizer.tokens_per_frame, model.tokenizer.vocab_size
    frames = torch.randint(0, 256, (train.tokenizer.batch_size, 64, 64, 3), dtype=torch.uint8, device=device)
    fused = None if optimizer == "fused" else False
    tok_opt = adamw(model.tokenizer.parameters(), train.tokenizer.lr, train, fused)

    def tokenizer_step():
        with autocast(precision, device):
            loss, _ = model.tokenizer.loss(frames, frames)
        tok_opt.zero_grad()
        loss.backward()
        tok_opt.step()

    seq = 2 * cfg.dynamics.context_frames
    B = train.dynamics.batch_size
    batch = {"tokens": torch.randint(vocab, (B, seq + 1, n)), "actions": torch.randint(0, 1, (B, seq)),
             "rewards": torch.zeros(B, seq), "ends": torch.zeros(B, seq, dtype=torch.bool),
             "mask": torch.ones(B, seq, dtype=torch.bool)}
    batch = {key: value.to(device) for key, value in batch.items()}
    dyn_opt = adamw(model.dynamics.parameters(), train.dynamics.peak_lr(model.cfg.dynamics.d_model), train, fused)

    def dynamics_step(forward=None):
        with autocast(precision, device):
            loss, _ = dynamics_loss(model, batch, train, forward)
        dyn_opt.zero_grad()
        loss.backward()
        dyn_opt.step()

    tok_s, dyn_s = _time_steps(tokenizer_step, steps, device), _time_steps(dynamics_step, steps, device)
    extra = {}
    if compile_step:
        forward = compiled(model.dynamics)
        start = time.perf_counter()
        dynamics_step(forward)  # compiles
        compile_s = time.perf_counter() - start
        compiled_s = _time_steps(lambda: dynamics_step(forward), steps, device)
        extra = {"compiled_dynamics_frames_per_s": B * seq / compiled_s, "compiled_dynamics_step_ms": 1000 * compiled_s,
                 "first_compiled_step_s": compile_s}
    return extra | {"preset": name, "precision": precision, "optimizer": optimizer, "device": device,
            "tokens_per_frame": n,
            "dynamics_params": sum(p.numel() for p in model.dynamics.parameters()),
            "tokenizer_params": sum(p.numel() for p in model.tokenizer.parameters()),
            "tokenizer_frames_per_s": train.tokenizer.batch_size / tok_s, "tokenizer_step_ms": 1000 * tok_s,
            "dynamics_frames_per_s": B * seq / dyn_s, "dynamics_step_ms": 1000 * dyn_s,
            "dynamics_batch": f"{B} x {seq} frames"}


def main(args: Args) -> list[dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    precisions = [p for p in args.precisions if p != "bfloat16" or native_bf16(args.device)]
    compile_step = args.compile and compiler_missing(args.device) is None
    rows = [bench_preset(name, precision, args.steps, args.device, compile_step, optimizer) for name in args.presets
            for precision in precisions for optimizer in args.optimizers]
    where = (torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda"
             else f"{cpu_name()}, {torch.get_num_threads()} threads")
    table = Table(title=f"training throughput ({where}, allocator {env or 'glibc defaults'})")
    for col in ("preset", "precision", "optimizer", "tokens/frame", "tokenizer frames/s", "dynamics frames/s",
                "compiled (first step)", "dynamics batch", "dynamics params"):
        table.add_column(col, justify="right")
    for r in rows:
        compiled_cell = (f"{r['compiled_dynamics_frames_per_s']:.0f} ({r['first_compiled_step_s']:.0f} s)"
                         if "compiled_dynamics_frames_per_s" in r else "-")
        table.add_row(r["preset"], r["precision"], r["optimizer"], str(r["tokens_per_frame"]),
                      f"{r['tokenizer_frames_per_s']:.0f}",
                      f"{r['dynamics_frames_per_s']:.0f}", compiled_cell, r["dynamics_batch"],
                      f"{r['dynamics_params'] / 1e6:.1f}M")
    Console().print(table)
    if args.json:
        write_results(args.json, {"date": time.strftime("%Y-%m-%d"), "device": where, "torch": torch.__version__,
                                  "triton": triton_version(), "threads": torch.get_num_threads(), "allocator": env,
                                  "results": rows})
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
