"""Benchmark: the dynamics phase for the same wall time with each dynamics variant (transformer size, local mixing,
...), batch size and warmup, then how well the model predicts held-out episodes: moving-pixel PSNR against copying
the last frame and, for games with an object parser, object recall. It decided `--dynamics.batch-size`,
`--dynamics.warmup-share` and the tiny preset's dynamics.

    python benchmarks/dynamics_phase.py --checkpoint RUN --data DATA [--seconds 150] [--batch-sizes 16 8]
        [--warmup-shares 0 0.05] [--variants default d_model=256,n_layers=4,n_heads=4]
        [--json results/dynamics_phase_catch_avx2.json]

The world model in RUN keeps its tokenizer (and termination CNN); its dynamics start again from the
same new weights for every variant and train on DATA's training split as in `dreamworld train` (its windows, end
share, loss and learning-rate schedule; compiled when `train` would compile a phase that long). Scored on the
held-out split with `dreamworld.evaluate.fidelity.fidelity` at horizons 1..16.

From a clean checkout, record the data and train the run first (a few minutes on a 2-core CPU):

    dreamworld collect --env Catch --steps 50000 --out data/catch
    dreamworld train --data data/catch --out runs/catch --minutes 15
    python benchmarks/dynamics_phase.py --checkpoint runs/catch --data data/catch
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from itertools import product

import torch
import tyro
from common import apply_settings, save_results
from rich.console import Console
from rich.table import Table

from dreamworld import checkpoint as ckpt
from dreamworld.envs import EpisodeDataset
from dreamworld.evaluate.fidelity import fidelity
from dreamworld.model.precision import flush_denormals
from dreamworld.model.world_model import WorldModel
from dreamworld.tracking import Tracker
from dreamworld.train.compiling import compiled, should_compile
from dreamworld.train.config import DynamicsPhase, OutcomePhase, TerminationPhase, TokenizerPhase, TrainConfig
from dreamworld.train.data import WindowSampler, load_steps, split_episodes
from dreamworld.train.phases import phase_budget, run_phase
from dreamworld.train.trainer import dynamics_loss, encode_frames, sequence_frames

HORIZONS = ("1", "4", "16")


@dataclass
class Args:
    checkpoint: str
    """a trained world model (its tokenizer encodes the data; its dynamics are replaced)"""
    data: str
    """the dataset it was trained on (the training split trains, the held-out split is scored)"""
    seconds: float = 150.0
    """wall time of each dynamics phase"""
    steps: int | None = None
    """train each variant this many steps instead of for --seconds (a fair comparison on a shared machine)"""
    batch_sizes: list[int] = field(default_factory=lambda: [DynamicsPhase.batch_size])
    """dynamics batch sizes to compare (sequences per step)"""
    warmup_shares: list[float] = field(default_factory=lambda: [DynamicsPhase.warmup_share])
    """--dynamics.warmup-share values to compare, each with every batch size (0: warmup over --warmup-steps steps
    only)"""
    variants: list[str] = field(default_factory=lambda: ["default"])
    """dynamics to compare, each `default` (the config in --checkpoint) or comma-separated FIELD=VALUE of
    DynamicsConfig and lr (e.g. d_model=256,n_layers=4,n_heads=4 or lr=2e-3)"""
    rollouts: int = 128
    """held-out rollouts scored per variant"""
    threads: int = 2
    """torch CPU threads"""
    seed: int = 0
    """seed of the new dynamics weights and of the windows (the same for every variant)"""
    json: str | None = None
    """write the results to this JSON file"""


def with_new_dynamics(trained: WorldModel, variant: str, kept: dict, seed: int) -> tuple[WorldModel, float | None]:
    """(a copy of `trained` whose dynamics are new weights (from `seed`) of its config with `variant`'s settings,
    the learning rate the variant names or None); `kept` (the tokenizer and termination CNN's weights)
    loaded as they were."""
    cfg, lr = copy.deepcopy(trained.cfg), None
    if variant != "default":
        cfg.dynamics, lr = apply_settings(cfg.dynamics, variant.split(","), variant, "d_model=256,n_layers=4")
    torch.manual_seed(seed)
    model = WorldModel(cfg)
    model.load_state_dict(kept, strict=False)
    return model, lr


def main(args: Args) -> dict:
    """Train the dynamics once per size, batch size and warmup for the same time; print the table, return (and write)
    the results."""
    flush_denormals()
    torch.set_num_threads(args.threads)
    ds, trained = EpisodeDataset(args.data), ckpt.load(args.checkpoint)
    cfg = TrainConfig(minutes=None if args.steps else args.seconds / 60, steps=args.steps,
                      tokenizer=TokenizerPhase(share=0.0), termination=TerminationPhase(share=0.0),
                      outcome=OutcomePhase(share=0.0), checkpoint_seconds=1e9, eval_seconds=1e9, seed=args.seed)
    train_eps, held = split_episodes(ds, cfg.holdout)
    steps = load_steps(ds, train_eps, progress=False)
    tokens = encode_frames(trained, steps.frames, progress=False)  # (F, N)
    kept = {k: v for k, v in trained.state_dict().items() if not k.startswith("dynamics.")}
    rows = {}
    for name, batch_size, warmup_share in product(args.variants, args.batch_sizes, args.warmup_shares):
        variant = replace(cfg, dynamics=replace(cfg.dynamics, batch_size=batch_size, warmup_share=warmup_share))
        model, lr = with_new_dynamics(trained, name, kept, args.seed)
        sampler = WindowSampler(steps, tokens, sequence_frames(model, variant), variant.end_share, args.seed)
        compile_step = should_compile(variant.dynamics.compile, "cpu", *phase_budget(variant, "dynamics", model))
        forward = compiled(model.dynamics) if compile_step else model.dynamics  # as `train` decides it

        def loss(model=model, sampler=sampler, forward=forward, variant=variant):
            return dynamics_loss(model, sampler.sample(variant.dynamics.batch_size), variant, forward)

        peak = lr or variant.dynamics.peak_lr(model.cfg.dynamics.d_model)
        phase = run_phase("dynamics", model, list(model.dynamics.parameters()), loss, peak, variant,
                          {"global_step": 0}, lambda _: None, Tracker("disabled", ".", {}, "bench"),
                          warmup_share=warmup_share)
        model.eval()
        metrics, _ = fidelity(model, ds, held, horizon=16, samples=args.rollouts)
        rows[f"{name}, batch {batch_size}, warmup share {warmup_share:g}"] = {
            "variant": name, "parameters": sum(p.numel() for p in model.dynamics.parameters()),
            "batch_size": batch_size, "warmup_share": warmup_share, "steps": phase["steps"],
            "seconds": phase["seconds"], "final_loss": phase["final_loss"], "psnr": metrics["psnr"],
            "baseline_psnr": metrics["baseline_psnr"], "moving_psnr": metrics["moving_psnr"],
            "baseline_moving_psnr": metrics["baseline_moving_psnr"], "object_recall": metrics.get("object_recall")}
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:.0f} s"
    table = Table(title=f"dynamics phase, {budget} each, {args.data}, {args.rollouts} rollouts")
    for col in ("variant", "steps", "final loss", *(f"moving PSNR h={h} (copy-last)" for h in HORIZONS),
                *(f"object recall h={h}" for h in HORIZONS)):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        recall = r["object_recall"] or {}
        table.add_row(name, str(r["steps"]), f"{r['final_loss']:.4f}",
                      *(f"{r['moving_psnr'][h]:.2f} ({r['baseline_moving_psnr'][h]:.2f})" for h in HORIZONS),
                      *(f"{recall[h]:.2f}" if recall.get(h) is not None else "-" for h in HORIZONS))
    Console().print(table)
    return save_results(args, checkpoint=args.checkpoint, data=args.data, seconds=args.seconds,
                        rollouts=args.rollouts, rows=rows)


if __name__ == "__main__":
    main(tyro.cli(Args))
