"""The phases of the parts a world model may have or not, each run by `run_phase` (phases.py) on data the
earlier phases prepared: the refiner (refiner.py) on the tokenizer's drawings, the termination CNN (termination.py)
on the model's drawings, and the dynamics' outcome heads (outcome.py) on the frozen transformer's states."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from dreamworld.evaluate.fidelity import log_reconstructions
from dreamworld.model.precision import autocast, resolve
from dreamworld.model.world_model import WorldModel
from dreamworld.tracking import Tracker
from dreamworld.train.data import Steps
from dreamworld.train.distributed import Distributed
from dreamworld.train.outcome import OutcomeStates, outcome_heads, outcome_loss
from dreamworld.train.phases import RunClock, run_phase
from dreamworld.train.refiner import ChainSampler, refiner_loss
from dreamworld.train.termination import Augment, TransitionSampler, reconstruct, termination_loss

if TYPE_CHECKING:
    from dreamworld.train.config import TrainConfig


def refiner_phase(model: WorldModel, steps: Steps, fresh: torch.Tensor, cfg: TrainConfig,
                  generator: torch.Generator, state: dict, save: Callable[[dict], None], tracker: Tracker,
                  dist: Distributed) -> dict:
    """The refiner phase (refiner.py) on the frames of `steps` and the tokenizer's drawings of them, `fresh` (uint8
    (F, H, W, 3)), the tokenizer frozen; then a strip of its drawings is logged. Returns the phase summary."""
    sampler = ChainSampler(torch.from_numpy(steps.frames), fresh, steps.actions, steps.episode_start, cfg.refiner_run,
                           cfg.refiner_runs, cfg.refiner_chains, generator)

    def loss_fn(batch: dict) -> tuple[torch.Tensor, dict]:
        loss, metrics, last = refiner_loss(model.refiner, batch)
        sampler.update(last)
        return loss, metrics

    net = dist.wrap(model.refiner, loss_fn)
    groups = model.refiner.parameter_groups(cfg.refiner_logits_lr_scale)
    summary = run_phase("refiner", model, groups, lambda: net(sampler.sample(dist.device)),
                        cfg.refiner_lr, cfg, state, save, tracker, dist=dist, precision=cfg.refiner_precision)
    if dist.is_main:
        log_reconstructions(model, steps, tracker, state["global_step"], refined=True)
        if (warning := refiner_stuck(summary)) is not None:
            tqdm.write(warning, file=sys.stderr)
    return summary


def refiner_stuck(summary: dict) -> str | None:
    """A warning when a refiner phase's loss (its `run_phase` summary) ended above where it started, else None.
    That refiner draws worse than the tokenizer alone would let it, and the termination CNN learns from its
    drawings: on Cave one such run (seed 0) reconstructed at 30.57 dB and its CNN found no ending, while the same
    command with seed 1 reached 34.97 dB and termination F1 0.917."""
    first, final = summary.get("first_loss"), summary.get("final_loss")
    if first is None or final is None or not final > first:
        return None
    return (f"dreamworld: the refiner's loss ended above where it started ({first:.4f} -> {final:.4f}): it got stuck "
            "and draws badly, and the termination CNN learns from its drawings; train again with another --seed")


def termination_phase(model: WorldModel, steps: Steps, fresh: torch.Tensor, cfg: TrainConfig,
                      generator: torch.Generator, state: dict, save: Callable[[dict], None], tracker: Tracker,
                      dist: Distributed | None = None, clock: RunClock | None = None) -> dict:
    """The termination phase (termination.py) on the model's drawings of the frames of `steps` (from `fresh`, the
    tokenizer's drawings, uint8 (F, H, W, 3)), then the prior correction of its logits, which the caller saves
    with the next phase so it is applied once. Returns the phase summary, with the shift."""
    dist = dist or Distributed("cpu")
    frames = torch.from_numpy(steps.frames)  # (F, H, W, 3) uint8
    with autocast(cfg.refiner_precision, dist.device):
        drawn = reconstruct(model, fresh, frames, steps.episode_start, steps.actions)  # (F, H, W, 3)
    augment = (Augment(cfg.termination_hud_rows, cfg.termination_shift, cfg.termination_flip)
               if cfg.termination_shift or cfg.termination_flip else None)
    sampler = TransitionSampler(drawn, steps.ends, steps.valid, cfg.end_share, generator, near=cfg.termination_near,
                                augment=augment, real=frames, real_share=cfg.termination_real_share,
                                rewards=steps.rewards if model.termination.reward_head is not None else None,
                                reward_share=cfg.termination_reward_share)
    net = dist.wrap(model.termination, lambda batch: termination_loss(model.termination, batch))
    summary = run_phase("termination", model, list(model.termination.parameters()),
                        lambda: net(sampler.sample(cfg.termination_batch_size, dist.device)), cfg.termination_lr, cfg,
                        state, save, tracker, dist=dist, precision=cfg.termination_precision, clock=clock)
    summary["prior_shift"] = sampler.prior_shift()
    model.termination.correct_prior(summary["prior_shift"])
    if model.termination.reward_head is not None:
        model.termination.correct_reward_prior(sampler.reward_prior_shift())
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
    pool = OutcomeStates(model, steps, tokens, cfg.outcome_event_share, generator, resolve(cfg.precision, dist.device),
                         progress=dist.is_main)
    net = dist.wrap(heads, lambda batch: outcome_loss(model, batch))
    summary = run_phase("outcome", model, list(heads.parameters()),
                        lambda: net(pool.sample(cfg.outcome_batch_size, dist.device)), cfg.outcome_lr, cfg, state,
                        save, tracker, dist=dist, clock=clock)
    model.dynamics.requires_grad_(True)
    return summary
