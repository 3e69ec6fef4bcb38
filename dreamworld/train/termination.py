"""Training the termination model: the drawings it learns from (`drawings`), the transitions it sees
(`TransitionSampler`) and its loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dreamworld.model.termination import TerminationNet
from dreamworld.model.tokenizer import Tokenizer, pixels


@torch.no_grad()
def drawings(tokenizer: Tokenizer, tokens: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Tokens (F, N) -> the tokenizer's drawings of them, uint8 (F, H, W, 3) on the CPU."""
    return torch.cat([tokenizer.decode_uint8(tokens[i : i + batch]).cpu() for i in range(0, len(tokens), batch)])


class TransitionSampler:
    """Random steps of a dataset as (frame before, frame after, termination). `end_share` of a batch is drawn from
    terminations, which are rare (Catch has about 20 in 30k steps), and as much again from the `near` steps just
    before them: there the danger is on screen (a bomb by the catcher, one life left) but the episode goes on, and
    without them the model learned "danger means the end" (on Catch, 3 false alarms next to 12 fresh endings)."""

    def __init__(self, frames: torch.Tensor, ends: torch.Tensor, valid: torch.Tensor, end_share: float,
                 generator: torch.Generator, near: int = 8):
        self.frames, self.ends = frames, ends  # (F, H, W, 3) uint8, (F,) bool
        self.steps = torch.nonzero(valid).squeeze(1)  # (S,) frames a step follows
        self.end_steps = torch.nonzero(valid & ends).squeeze(1)  # (E,)
        self.near_steps = _steps_before(self.end_steps, valid & ~ends, near)  # (<= E * near,)
        self.end_share, self.generator = end_share, generator

    def prior_shift(self) -> float:
        """How much more likely an ending is in these batches than in the data, in log-odds: logit(sampled rate) -
        logit(data rate). A classifier trained on the batches overstates the odds of an ending by this much (2.6
        on Cave, 5.0 on Catch), so at logit 0 it calls an ending where its chance is ~7% (Cave): subtracting it
        (`TerminationNet.correct_prior`) puts the threshold at an even chance. 0 without endings."""
        if not len(self.end_steps):
            return 0.0
        rate = len(self.end_steps) / len(self.steps)
        uniform = 1 - self.end_share * (1 + bool(len(self.near_steps)))  # rows from all steps
        sampled = self.end_share + uniform * rate
        return math.log(sampled / (1 - sampled)) - math.log(rate / (1 - rate))

    def sample(self, batch: int, device: str | torch.device) -> dict[str, torch.Tensor]:
        """before, after float (B, 3, H, W) in [0, 1]; ends (B,) float."""
        g = self.generator
        idx = self.steps[torch.randint(len(self.steps), (batch,), generator=g)]  # (B,)
        draw = torch.rand(batch, generator=g)
        e = self.end_share
        for pool, pick in ((self.end_steps, draw < e), (self.near_steps, (draw >= e) & (draw < 2 * e))):
            if len(pool):
                idx[pick] = pool[torch.randint(len(pool), (int(pick.sum()),), generator=g)]
        return {"before": pixels(self.frames[idx], device), "after": pixels(self.frames[idx + 1], device),
                "ends": self.ends[idx].float().to(device)}


def _steps_before(end_steps: torch.Tensor, ongoing: torch.Tensor, near: int) -> torch.Tensor:
    """The up to `near` steps before each of `end_steps` in its own episode: steps whose `ongoing` mask (a valid
    step that did not end the episode) holds for them and for every step between them and the ending."""
    found = []
    for end in end_steps.tolist():
        step = end - 1
        while step >= 0 and end - step <= near and ongoing[step]:
            found.append(step)
            step -= 1
    return torch.tensor(found, dtype=torch.long)


def termination_loss(net: TerminationNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Termination BCE over a `TransitionSampler` batch (the sampler already over-represents the endings)."""
    logits = net(batch["before"], batch["after"])
    loss = F.binary_cross_entropy_with_logits(logits, batch["ends"])
    return loss, {"loss": loss.item(), "accuracy": ((logits > 0) == batch["ends"].bool()).float().mean().item()}
