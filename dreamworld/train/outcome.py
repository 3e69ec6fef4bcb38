"""The outcome phase: after the dynamics, the reward head (and the end head, where the dynamics read terminations)
learns again on the frozen transformer's states, from batches rich in events.

Why: the outcome head trains alongside next-token prediction, whose loss is hundreds of times larger, and events
are rare (a reward on about 2.7% of Catch's steps). On a trained Catch model, retraining the head alone on the
frozen states, a quarter of each batch drawn from events, raised reward F1 on freshly recorded episodes from 0.88
to 0.93 in 2,000 steps. The transformer's states are computed once (the data streamed through it in chunks of
two context windows), so each step costs only the head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dreamworld.model.precision import autocast
from dreamworld.model.world_model import WorldModel
from dreamworld.train.data import Steps


class OutcomeStates:
    """The frozen dynamics' states of a dataset's steps (computed at `precision`) with the next frame's tokens,
    rewards and terminations. Batches draw `event_share` of their rows from steps with a reward or a termination and
    the rest from the other steps.

    States take at most `max_bytes` (as bfloat16): past that, a random subset of the event steps fills up to half
    of the room and a random subset of the others the rest."""

    def __init__(self, model: WorldModel, steps: Steps, tokens: torch.Tensor, event_share: float,
                 generator: torch.Generator, precision: str = "float32", max_bytes: float = 512e6,
                 progress: bool = True):
        dyn, n = model.dynamics, model.tokenizer.tokens_per_frame
        chunk = 2 * dyn.cfg.context_frames
        valid = torch.nonzero(steps.valid).squeeze(1)  # (S,) steps followed by a frame
        is_event = ((steps.rewards != 0) | steps.ends)[valid]  # (S,)
        eventful, calm = valid[is_event], valid[~is_event]
        capacity = max(2, int(max_bytes // (2 * n * dyn.cfg.d_model)))
        if len(valid) > capacity:
            eventful = eventful[torch.randperm(len(eventful), generator=generator)[: capacity // 2]]
            calm = calm[torch.randperm(len(calm), generator=generator)[: capacity - len(eventful)]]
        keep = torch.zeros(len(steps.valid), dtype=torch.bool)  # (F,) steps whose state is kept
        keep[eventful], keep[calm] = True, True
        firsts = torch.unique(steps.episode_start).tolist()
        # an episode's valid steps run from its first frame to the frame before its last (which has no step)
        spans = zip(firsts, [*firsts[1:], len(steps.valid)], strict=True)
        chunks = [(a, min(a + chunk, last - 1)) for first, last in spans for a in range(first, last - 1, chunk)]
        states, picked = [], []
        device = model.device
        model.eval()
        with torch.no_grad():
            for a, b in tqdm(chunks, desc="outcome states", leave=False, disable=not progress):
                mask = keep[a:b]
                if not mask.any():
                    continue
                with autocast(precision, device):
                    h = dyn.hidden(tokens[None, a:b].to(device), steps.actions[None, a:b].to(device))[0]  # (L, N, C)
                states.append(h[mask.to(device)].to("cpu", torch.bfloat16))  # (kept, N, C)
                picked.append(torch.arange(a, b)[mask])
        self.states = torch.cat(states)  # (M, N, C) bfloat16
        index = torch.cat(picked)  # (M,) step of each state
        self.next_tokens = tokens[index + 1]  # (M, N)
        self.rewards, self.ends = steps.rewards[index], steps.ends[index]  # (M,)
        eventful_rows = (self.rewards != 0) | self.ends  # (M,)
        self.events = torch.nonzero(eventful_rows).squeeze(1)  # (E,) rows holding an event
        self.calm = torch.nonzero(~eventful_rows).squeeze(1)  # (M - E,) the others
        self.event_share, self.generator = event_share, generator

    def sample(self, batch: int, device: torch.device | str) -> dict[str, torch.Tensor]:
        """states (B, N, C) float32, next_tokens (B, N), rewards (B,), ends (B,) on `device`."""
        g = self.generator
        share = self.event_share if len(self.events) and len(self.calm) else float(len(self.events) > 0)
        pick = torch.rand(batch, generator=g) < share  # (B,) rows drawn from the events
        events, calm = _draw(self.events, batch, g), _draw(self.calm, batch, g)  # (B,) each
        rows = torch.where(pick, events, calm)  # (B,)
        return {"states": self.states[rows].to(device, torch.float32), "next_tokens": self.next_tokens[rows].to(device),
                "rewards": self.rewards[rows].to(device), "ends": self.ends[rows].float().to(device)}


def _draw(pool: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
    """`batch` entries of `pool` drawn at random (zeros when it is empty: the caller then never picks them)."""
    if not len(pool):
        return torch.zeros(batch, dtype=torch.long)
    return pool[torch.randint(len(pool), (batch,), generator=generator)]


def outcome_heads(model: WorldModel) -> nn.ModuleList:
    """The modules the outcome phase trains: the outcome layer, the reward head and the end head if any."""
    dyn = model.dynamics
    return nn.ModuleList([m for m in (dyn.outcome, dyn.reward_head, dyn.end_head) if m is not None])


def outcome_loss(model: WorldModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Reward-sign cross-entropy (plus termination BCE with an end head) on an `OutcomeStates` batch; the batch
    already over-represents events, so no class weights."""
    reward_logits, end_logits = model.dynamics.outcomes(batch["states"], batch["next_tokens"])  # (B, 3), (B,)
    reward_class = (torch.sign(batch["rewards"]) + 1).long()  # (B,)
    loss = F.cross_entropy(reward_logits.float(), reward_class)
    metrics = {"reward_loss": loss.item(),
               "reward_accuracy": (reward_logits.argmax(-1) == reward_class).float().mean().item()}
    if end_logits is not None:
        end_loss = F.binary_cross_entropy_with_logits(end_logits.float(), batch["ends"])
        loss = loss + end_loss
        metrics["end_loss"] = end_loss.item()
    return loss, metrics | {"loss": loss.item()}
