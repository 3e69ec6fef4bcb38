"""Training phases on a budget: `run_phase` optimises one loss until its share of --steps or --minutes is spent,
checkpointing, evaluating and resuming on the way; `RunClock` keeps the run's phases on one schedule."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from dreamworld.model.precision import autocast, resolve
from dreamworld.model.world_model import WorldModel
from dreamworld.tracking import Tracker
from dreamworld.train.distributed import Distributed

if TYPE_CHECKING:
    from dreamworld.train.config import TrainConfig


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN/inf; the last good checkpoint is kept."""


def _shares(cfg: TrainConfig, termination: bool) -> dict[str, float]:
    """Each phase's share of the budget; `termination`: the model has a termination CNN (else the dynamics take its
    share)."""
    termination_share = cfg.termination.share if termination else 0.0
    return {"tokenizer": cfg.tokenizer.share, "termination": termination_share,
            "dynamics": 1 - cfg.tokenizer.share - termination_share - cfg.outcome.share, "outcome": cfg.outcome.share}


def check_shares(cfg: TrainConfig, model: WorldModel) -> None:
    """Refuse budget shares that are negative or leave `model`'s dynamics no time."""
    shares = _shares(cfg, model.termination is not None)
    if min(shares.values()) < 0 or shares["dynamics"] <= 0:
        given = {k: v for k, v in shares.items() if k != "dynamics"}
        raise ValueError(f"the budget shares {given} leave the dynamics no time: keep each at 0 or more and their "
                         "sum below 1 (--tokenizer.share, --termination.share, --outcome.share)")


def _minutes(cfg: TrainConfig) -> float | None:
    """The time budget: --minutes, 15 when neither --minutes nor --steps is given, None for --steps alone."""
    return cfg.minutes if (cfg.minutes is not None or cfg.steps is not None) else 15.0


def phase_budget(cfg: TrainConfig, phase: str, model: WorldModel) -> tuple[int | None, float | None]:
    """(steps, seconds) for a phase of `model`: its shares of --steps and of --minutes."""
    share = _shares(cfg, model.termination is not None)[phase]
    minutes = _minutes(cfg)
    return (max(1, round(cfg.steps * share)) if cfg.steps else None,
            minutes * 60 * share if minutes is not None else None)


def phase_end(cfg: TrainConfig, phase: str) -> float | None:
    """Seconds into the run by which `phase` ends, for the phases that absorb the time spent between phases: the
    dynamics end when the budget less the outcome share is spent (encoding the frames comes out of them), the
    outcome phase (which computes its states first) when the whole budget is. None for the tokenizer and the
    termination model, which train for their shares, and without a time budget."""
    minutes = _minutes(cfg)
    if phase not in ("dynamics", "outcome") or minutes is None:
        return None
    return minutes * 60 * (1 - cfg.outcome.share if phase == "dynamics" else 1)


@dataclass
class RunClock:
    """A run's wall clock (kept across resumes): the dynamics and outcome phases end at their `phase_end` on it,
    so the time spent between phases comes out of the budget."""

    started: float
    """time.perf_counter() at which the run's clock read 0"""

    def elapsed(self) -> float:
        """Seconds on the run's clock."""
        return time.perf_counter() - self.started


def lr_scale(step: int, done: float, warmup_steps: int, warmup_share: float = 0.0) -> float:
    """The learning rate's share of its peak at `step` of a phase `done` (0..1) through its budget: a linear warmup
    over `warmup_steps` steps or `warmup_share` of the budget, whichever ends first (0: the steps alone), then a
    cosine decay to 5%."""
    warm = (step + 1) / warmup_steps
    if warmup_share > 0:
        warm = max(warm, done / warmup_share)
    return min(1.0, warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done)))


def adamw(params, lr: float, cfg: TrainConfig, fused: bool | None = None) -> torch.optim.AdamW:
    """The optimizer of every training phase: AdamW over `params` (tensors or parameter groups), fused into one
    kernel per step where every parameter lives on a CPU or CUDA device (`fused=None`; False: the for-loop one). On
    2 AVX2 cores an update of the tiny tokenizer took 4.5 ms fused against 10.6, of its dynamics 0.7 against 4.8
    (`benchmarks/train.py --optimizers fused for-loop` times whole steps)."""
    params = list(params)
    if fused is None:
        tensors = [p for item in params for p in (item["params"] if isinstance(item, dict) else [item])]
        fused = all(p.device.type in ("cpu", "cuda") for p in tensors)
    return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95), fused=fused)


def _seconds_budget(name: str, cfg: TrainConfig, state: dict, resumed: bool, seconds_budget: float | None,
                    dist: Distributed, clock: RunClock | None) -> tuple[float | None, bool]:
    """(seconds, out of time) for the phase: its share of the budget, or, for a phase that ends at its
    `phase_end` on the run's `clock`, the time left until then (as saved when resuming, rank 0's otherwise)."""
    end = phase_end(cfg, name)
    if seconds_budget is None or clock is None or end is None:
        return seconds_budget, False
    seconds_budget = (float(state["seconds_budget"]) if resumed and state.get("seconds_budget") is not None
                      else dist.from_main([max(0.0, end - clock.elapsed())])[0])
    out_of_time = seconds_budget == 0
    if out_of_time and dist.is_main:
        tqdm.write(f"dreamworld: the {name} phase has no time left of the {_minutes(cfg):g}-minute budget "
                   f"({clock.elapsed():.0f} s spent before it): it is skipped; raise --minutes", file=sys.stderr)
    return seconds_budget, out_of_time


def _step(name: str, step: int, opt: torch.optim.Optimizer, tensors: list[torch.Tensor], lr: float,
          loss_fn: Callable[[], tuple[torch.Tensor, dict]], cfg: TrainConfig, precision: str,
          dist: Distributed) -> tuple[float, dict, torch.Tensor]:
    """One optimiser step at learning rate `lr`: the loss (the ranks'
    mean), its metrics and the clipped gradients' norm; raises TrainingDiverged on a NaN/inf loss or gradient."""
    for group in opt.param_groups:
        group["lr"] = lr
    with autocast(precision, dist.device):
        loss, metrics = loss_fn()
    loss_value = dist.mean(loss.item())
    if not math.isfinite(loss_value):
        raise TrainingDiverged(f"the {name} loss became {loss_value} at step {step}: stopped; the last good "
                               "checkpoint is kept. Lower the learning rate and run again with --resume")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(tensors, cfg.grad_clip)
    if not torch.isfinite(grad_norm):
        raise TrainingDiverged(f"the {name} gradients became {grad_norm.item()} at step {step}: stopped; the "
                               "last good checkpoint is kept. Lower the learning rate and run again with --resume")
    opt.step()
    return loss_value, metrics, grad_norm


def run_phase(name: str, model: WorldModel, params, loss_fn: Callable[[], tuple[torch.Tensor, dict]],
              lr: float, cfg: TrainConfig, state: dict, save: Callable[[dict], None], tracker: Tracker,
              on_eval: Callable[[int], None] | None = None, dist: Distributed | None = None,
              precision: str = "float32", clock: RunClock | None = None, warmup_share: float = 0.0) -> dict:
    """Optimise `loss_fn` (its forward pass at `precision`) over the tensors `params` at peak learning rate `lr`
    until the phase's budget is spent;
    resumes from `state` if it is this phase's. Returns the phase summary. With `clock`, the time budget of the
    dynamics and outcome phases lasts until their `phase_end` on the run's clock; otherwise a phase trains for
    its share of the budget. The warmup lasts cfg.warmup_steps steps, or `warmup_share` of the budget if that
    ends sooner (`lr_scale`). With `dist`, stopping,
    saving, evaluating and the learning rate follow rank 0's clock and the loss is the mean over the ranks, so
    all ranks step in lockstep."""
    dist = dist or Distributed("cpu")
    precision = resolve(precision, dist.device)  # once, not on every step
    steps_budget, seconds_budget = phase_budget(cfg, name, model)
    resumed = state.get("phase") == name and "optimizer" in state
    seconds_budget, out_of_time = _seconds_budget(name, cfg, state, resumed, seconds_budget, dist, clock)
    empty = out_of_time or (not steps_budget and not seconds_budget)  # a share of 0: nothing to optimise
    opt = adamw(params, lr, cfg)
    tensors = [p for group in opt.param_groups for p in group["params"]]
    step, elapsed = 0, 0.0
    if resumed:
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
    model.train()
    bar = tqdm(total=steps_budget or round(seconds_budget), initial=step if steps_budget else round(elapsed),
               desc=name, unit="step" if steps_budget else "s", dynamic_ncols=True, disable=not dist.is_main)
    started = time.perf_counter() - elapsed
    last_save = last_eval = time.perf_counter()
    window: list[float] = []
    first_loss = state.get("first_loss")
    while True:
        now = time.perf_counter()
        done = 1.0 if empty else max(step / steps_budget if steps_budget else 0.0,
                                     (now - started) / seconds_budget if seconds_budget else 0.0)
        left = seconds_budget - (now - started) if seconds_budget else math.inf  # seconds of the phase to go
        done, save_due, eval_due = dist.from_main([done, now - last_save >= cfg.checkpoint_seconds,
                                                   on_eval is not None and now - last_eval >= cfg.eval_seconds
                                                   and left > cfg.eval_seconds])
        if save_due:
            save({"phase": name, "step": step, "elapsed": now - started, "optimizer": opt.state_dict(),
                  "global_step": state["global_step"], "first_loss": first_loss, "seconds_budget": seconds_budget})
            last_save = now
        if eval_due:
            if dist.is_main:
                on_eval(state["global_step"] + step)
                model.train()
            dist.barrier()
            last_eval = time.perf_counter()
        if done >= 1:
            break
        step_lr = lr * lr_scale(step, done, cfg.warmup_steps, warmup_share)
        loss_value, metrics, grad_norm = _step(name, step, opt, tensors, step_lr, loss_fn, cfg, precision, dist)
        step += 1
        first_loss = loss_value if first_loss is None else first_loss
        window = (window + [loss_value])[-cfg.log_every :]
        bar.update(1 if steps_budget else round(time.perf_counter() - started) - bar.n)
        if step % cfg.log_every == 0:
            rate = step / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(loss=f"{np.mean(window):.4f}", steps_s=f"{rate:.1f}")
            tracker.log({f"train/{name}/{k}": v for k, v in metrics.items()} |
                        {f"train/{name}/lr": step_lr, f"train/{name}/steps_per_s": rate,
                         f"train/{name}/grad_norm": grad_norm.item()}, step=state["global_step"] + step)
    bar.close()
    seconds = time.perf_counter() - started
    state["global_step"] += step
    return {"steps": step, "seconds": seconds, "first_loss": first_loss,
            "final_loss": float(np.mean(window)) if window else float("nan")}
