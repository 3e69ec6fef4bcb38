"""The phases after the tokenizer's besides the dynamics', each run by `run_phase` (phases.py) on data the earlier
phases prepared: the termination CNN (termination.py) on the tokenizer's drawings, and the dynamics' outcome heads
(outcome.py) on the frozen transformer's states."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from dreamworld.model.precision import resolve
from dreamworld.model.world_model import WorldModel
from dreamworld.tracking import Tracker
from dreamworld.train.data import Steps
from dreamworld.train.distributed import Distributed
from dreamworld.train.outcome import OutcomeStates, outcome_heads, outcome_loss
from dreamworld.train.phases import RunClock, run_phase
from dreamworld.train.termination import TransitionSampler, termination_loss

if TYPE_CHECKING:
    from dreamworld.train.config import TrainConfig


def termination_phase(model: WorldModel, steps: Steps, fresh: torch.Tensor, cfg: TrainConfig,
                      generator: torch.Generator, state: dict, save: Callable[[dict], None], tracker: Tracker,
                      dist: Distributed | None = None, clock: RunClock | None = None) -> dict:
    """The termination phase (termination.py) on the tokenizer's drawings `fresh` (uint8 (F, H, W, 3)) of the
    frames of `steps`, as a dream shows them, then the prior correction of its logits, which the caller saves with
    the next phase so it is applied once. Returns the phase summary, with the shift."""
    dist = dist or Distributed("cpu")
    sampler = TransitionSampler(fresh, steps.ends, steps.valid, cfg.end_share, generator, near=cfg.termination.near)
    net = dist.wrap(model.termination, lambda batch: termination_loss(model.termination, batch))
    summary = run_phase("termination", model, list(model.termination.parameters()),
                        lambda: net(sampler.sample(cfg.termination.batch_size, dist.device)), cfg.termination.lr, cfg,
                        state, save, tracker, dist=dist, precision=cfg.termination.precision, clock=clock)
    summary["prior_shift"] = sampler.prior_shift()
    model.termination.correct_prior(summary["prior_shift"])
    return summary


def outcome_phase(model: WorldModel, steps: Steps, tokens: torch.Tensor, cfg: TrainConfig,
                  generator: torch.Generator, state: dict, save: Callable[[dict], None], tracker: Tracker,
                  dist: Distributed | None = None, clock: RunClock | None = None) -> dict:
    """The outcome phase (outcome.py) on the frames `tokens` of `steps`, the transformer frozen throughout: the
    states, then `run_phase` over the heads (until the run's `clock` reaches the phase's end, given one; else
    for the phase's share of the budget). Returns the phase summary."""
    dist = dist or Distributed("cpu")
    model.dynamics.requires_grad_(False)
    heads = outcome_heads(model).requires_grad_(True)
    pool = OutcomeStates(model, steps, tokens, cfg.outcome.event_share, generator,
                         resolve(cfg.dynamics.precision, dist.device), progress=dist.is_main)
    net = dist.wrap(heads, lambda batch: outcome_loss(model, batch))
    summary = run_phase("outcome", model, list(heads.parameters()),
                        lambda: net(pool.sample(cfg.outcome.batch_size, dist.device)), cfg.outcome.lr, cfg, state,
                        save, tracker, dist=dist, clock=clock)
    model.dynamics.requires_grad_(True)
    return summary
