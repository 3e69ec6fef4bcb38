"""Benchmark: the tokenizer phase for the same wall time in each stage width, FSQ levels, precision, batch size and
loss variant, then how well the tokenizer draws the held-out frames. A 15-minute run gives the tokenizer a time,
not a number of steps, so this is the comparison that decides the tiny preset's widths and levels,
`--tokenizer.precision` and `--tokenizer.batch-size`.

    python benchmarks/tokenizer_phase.py --data DATA [--seconds 180] [--precisions float32 bfloat16]
        [--batch-sizes 32 16] [--channels 16,32,64,128 32,64,128,128] [--levels 8,5,5,5 8,8,5,5,5]
        [--variants default worst_weight=4 lr=4e-3] [--json benchmarks/results/tokenizer_phase_cpu.json]

Each variant of the same widths and levels starts from the same weights (every one from the same seed), and every
variant from the same canvas; each runs
`run_phase("tokenizer", ...)` as `dreamworld train` does (its batches, end share, learning-rate schedule). Scored on
the held-out split: reconstruction PSNR (`dreamworld.evaluate.fidelity.reconstruction_psnr`) and each frame's worst
pixel error, which a missing 2x2 gem shows. From a clean checkout, record DATA first:
`dreamworld collect --env Bricks --steps 50000 --out data/bricks`.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import tyro
from common import apply_settings, save_results
from rich.console import Console
from rich.table import Table

from dreamworld.envs import EpisodeDataset
from dreamworld.envs.games.objects import parser
from dreamworld.evaluate.fidelity import reconstruction_frames, reconstruction_psnr
from dreamworld.evaluate.metrics import object_counts, object_scores
from dreamworld.model.precision import Precision, flush_denormals, resolve
from dreamworld.model.presets import preset
from dreamworld.model.tokenizer import TokenizerConfig
from dreamworld.model.world_model import WorldModel
from dreamworld.tracking import Tracker
from dreamworld.train.config import TokenizerPhase, TrainConfig
from dreamworld.train.data import load_steps, split_episodes
from dreamworld.train.phases import run_phase
from dreamworld.train.trainer import fit_to_dataset, tokenizer_batches


@dataclass
class Args:
    data: str
    """a recorded dataset (its training split trains, its held-out split is scored)"""
    seconds: float = 180.0
    """wall time of each tokenizer phase"""
    precisions: list[Precision] = field(default_factory=lambda: ["float32", "bfloat16"])
    """precisions to compare"""
    batch_sizes: list[int] = field(default_factory=lambda: [TokenizerPhase.batch_size])
    """tokenizer batch sizes to compare (frames per step), each with every precision"""
    channels: list[str] = field(default_factory=lambda: [",".join(map(str, preset("tiny").tokenizer.channels))])
    """tokenizer stage widths to compare, each as comma-separated numbers (the tiny preset's by default)"""
    levels: list[str] = field(default_factory=lambda: [",".join(map(str, preset("tiny").tokenizer.levels))])
    """FSQ levels to compare, each as comma-separated numbers (the tiny preset's by default; more or larger levels
    give more codes, so fewer patches that differ share one)"""
    variants: list[str] = field(default_factory=lambda: ["default"])
    """loss and learning-rate variants to compare, each `default` or comma-separated FIELD=VALUE of the tokenizer's
    config (`worst_weight=4,change_weight=8`) or `lr=VALUE` (the peak learning rate)"""
    threads: int = 2
    """torch CPU threads"""
    seed: int = 0
    """seed of the weights and the batches (the same for every variant)"""
    json: str | None = None
    """write the results to this JSON file"""


@torch.no_grad()
def worst_pixel_errors(model: WorldModel, frames: np.ndarray) -> torch.Tensor:
    """uint8 frames (F, H, W, 3) -> each frame's largest absolute pixel error (F,) after encoding and drawing."""
    real = torch.from_numpy(frames)
    drawn = torch.cat([model.tokenizer.decode_uint8(model.encode(real[i : i + 128])).cpu()
                       for i in range(0, len(real), 128)])  # (F, H, W, 3)
    return (drawn.int() - real.int()).abs().amax(dim=(1, 2, 3)).float()


@torch.no_grad()
def unstable_codes(model: WorldModel, frames: np.ndarray) -> float:
    """Of consecutive frames (F, H, W, 3), the share of token positions whose patch did not change whose code did:
    codes that move while the pixels stand still are noise the dynamics must predict."""
    tokens = model.encode(torch.from_numpy(frames))  # (F, N)
    (h, w), p = model.tokenizer.grid, frames.shape[1] // model.tokenizer.grid[0]
    patches = torch.from_numpy(frames).view(len(frames), h, p, w, p, 3).transpose(2, 3).reshape(len(frames), h * w, -1)
    still = (patches[1:] == patches[:-1]).all(-1)  # (F - 1, N)
    moved = tokens[1:] != tokens[:-1]  # (F - 1, N)
    return float((moved & still).sum() / still.sum().clamp_min(1))


def object_recall(model: WorldModel, ds: EpisodeDataset, held: list[int]) -> dict | None:
    """Object recall and precision (overall and per kind) of the tokenizer's drawings of held-out frames, for
    games with a frame parser; None otherwise."""
    parse = parser(ds.env_id)
    if parse is None:
        return None
    drawn, real = reconstruction_frames(model, ds, held, every=3, frames=2048)
    scores = object_scores(object_counts([parse(f) for f in real], [parse(f) for f in drawn.numpy()]))
    return {"recall": scores["object_recall"], "precision": scores["object_precision"],
            "recall_by_kind": scores["recall_by_kind"]}


def apply_variant(tokenizer: TokenizerConfig, variant: str, lr: float) -> tuple[TokenizerConfig, float]:
    """The tokenizer config and peak learning rate that a `--variants` entry names (`default`: both unchanged)."""
    if variant == "default":
        return tokenizer, lr
    tokenizer, named_lr = apply_settings(tokenizer, variant.split(","), variant, "worst_weight=4,lr=4e-3")
    return tokenizer, lr if named_lr is None else named_lr


def main(args: Args) -> dict:
    """Train one tokenizer per stage widths, levels, precision, batch size and variant for the same time; print the
    table and return (and write) the results."""
    flush_denormals()
    torch.set_num_threads(args.threads)
    ds = EpisodeDataset(args.data)
    train_eps, held = split_episodes(ds, TrainConfig().holdout)
    steps = load_steps(ds, train_eps, progress=False)
    held_frames = np.concatenate([ds.episode(i)["frames"][::5] for i in held])[:1024]  # (<= 1024, H, W, 3)
    held_frames_consecutive = ds.episode(held[0])["frames"][:512]  # (<= 512, H, W, 3)
    cfg = TrainConfig(minutes=args.seconds / 60, tokenizer=TokenizerPhase(share=1.0), checkpoint_seconds=1e9,
                      seed=args.seed)
    canvas = torch.randperm(len(steps.frames), generator=torch.Generator().manual_seed(args.seed))
    canvas_frames = steps.frames[canvas[: cfg.tokenizer.canvas_frames].sort().values.numpy()]  # (C, H, W, 3)
    rows = {}
    for widths, levels, precision, batch_size, variant in itertools.product(
            args.channels, args.levels, args.precisions, args.batch_sizes, args.variants):
        model_cfg = preset("tiny")
        model_cfg.tokenizer.channels = [int(c) for c in widths.split(",")]
        model_cfg.tokenizer.levels = [int(n) for n in levels.split(",")]
        model_cfg.tokenizer, lr = apply_variant(model_cfg.tokenizer, variant, cfg.tokenizer.lr)
        fit_to_dataset(model_cfg, ds, train_eps)
        torch.manual_seed(args.seed)
        model = WorldModel(model_cfg)
        model.tokenizer.fit_canvas(canvas_frames)
        batch = tokenizer_batches(steps, replace(cfg, tokenizer=replace(cfg.tokenizer, batch_size=batch_size)),
                                  torch.Generator().manual_seed(args.seed))

        def loss(model=model, batch=batch):
            return model.tokenizer.loss(*batch())

        phase = run_phase("tokenizer", model, list(model.tokenizer.parameters()), loss, lr, cfg,
                          {"global_step": 0}, lambda _: None, Tracker("disabled", ".", {}, "bench"),
                          precision=precision)
        model.eval()
        worst = worst_pixel_errors(model, held_frames)
        rows[f"{widths}, levels {levels}, {resolve(precision, 'cpu')}, batch {batch_size}, {variant}"] = {
            "params": sum(p.numel() for p in model.tokenizer.parameters()), "steps": phase["steps"],
            "seconds": phase["seconds"], "final_loss": phase["final_loss"],
            "heldout_reconstruction_psnr": reconstruction_psnr(model, ds, held, every=3, frames=2048),
            "worst_pixel_median": statistics.median(worst.tolist()),
            "worst_pixel_p90": float(worst.quantile(0.9)),
            "objects": object_recall(model, ds, held),
            "unstable_codes": unstable_codes(model, held_frames_consecutive)}
    table = Table(title=f"tokenizer phase, {args.seconds:.0f} s each, {args.data}")
    for col in ("widths, levels, precision, batch, variant", "parameters", "steps", "final loss", "held-out PSNR",
                "worst pixel median / p90", "object recall / precision", "unstable codes"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['params']:,}", str(r["steps"]), f"{r['final_loss']:.4f}",
                      f"{r['heldout_reconstruction_psnr']:.2f}",
                      f"{r['worst_pixel_median']:.0f} / {r['worst_pixel_p90']:.0f}",
                      "-" if r["objects"] is None
                      else f"{r['objects']['recall']:.3f} / {r['objects']['precision']:.3f}",
                      f"{r['unstable_codes']:.3f}")
    Console().print(table)
    return save_results(args, data=args.data, seconds=args.seconds, rows=rows)


if __name__ == "__main__":
    main(tyro.cli(Args))
