"""Training the termination model: the drawings it learns from (`drawings`, `reconstruct`), the transitions it
sees (`TransitionSampler`, `Augment`) and its loss."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from dreamworld.model.tokenizer import Tokenizer, pixels
from dreamworld.train.data import frames_before

if TYPE_CHECKING:
    from dreamworld.model.world_model import WorldModel
from dreamworld.model.termination import TerminationNet
from dreamworld.model.world_model import WorldModel


@torch.no_grad()
def drawings(tokenizer: Tokenizer, tokens: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Tokens (F, N) -> the tokenizer's drawings of them, uint8 (F, H, W, 3) on the CPU."""
    return torch.cat([tokenizer.decode_uint8(tokens[i : i + batch]).cpu() for i in range(0, len(tokens), batch)])


@torch.no_grad()
def reconstruct(model: WorldModel, fresh: torch.Tensor, frames: torch.Tensor, episode_start: torch.Tensor,
                actions: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """The tokenizer's drawings `fresh` (uint8 (F, H, W, 3), `drawings`) of the frames `frames` (the same shape,
    episodes laid end to end, each frame's episode starting at `episode_start` (F,), `actions` (F, ...) the action
    taken at each frame, `Steps.actions`) -> the model's drawings, uint8
    (F, H, W, 3) on the CPU: what the termination model learns from, frames as a dream shows them rather than the
    real ones (with a refiner, each drawn over the real frame before it, and an episode's first frame as it is, as
    a dream starts from a real frame; without one, `fresh`)."""
    if model.refiner is None:
        return fresh
    drawn = []
    for i in range(0, len(fresh), batch):
        index = torch.arange(i, min(i + batch, len(fresh)))  # (b,)
        has_before, before = frames_before(index, episode_start)  # (b,) each; the action taken at `before` led on
        drawn.append(model.tokenizer.to_uint8(model.draw_over_real(
            pixels(fresh[index], model.device), frames[before], has_before, actions[before])).cpu())
    return torch.cat(drawn)  # (F, H, W, 3)


@dataclass
class Augment:
    """Moves of the play area (the rows below the first `hud_rows`) applied alike to the frames before and after
    a step, for games whose endings depend on where things are relative to each other, not on screen. Cave's ~240
    crashes in 30k steps each happen at one height; trained on real frames, the CNN learned those (training F1 0.99,
    fresh episodes 0.79); with these moves (5,000 steps) it scored 0.91 on the real frames of 240 fresh
    crashes. `shift`: a circular move by up to that many rows and 2 columns; `flip`: upside down in half the rows."""

    hud_rows: int = 0
    shift: int = 0
    flip: bool = False

    def __call__(self, before: torch.Tensor, after: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (B, H, W, 3) twice (uint8: moved before they become floats, at a quarter of the bytes) -> the same,
        moved."""
        B, H, W, _ = before.shape
        rows = torch.arange(self.hud_rows, H)  # (h,) the play area
        shift = torch.randint(-self.shift, self.shift + 1, (B, 1), generator=generator)  # (B, 1)
        moved = self.hud_rows + (rows - self.hud_rows - shift) % (H - self.hud_rows)  # (B, h) source rows
        if self.flip:
            flipped = torch.rand(B, generator=generator) < 0.5  # (B,)
            moved[flipped] = moved[flipped].flip(1)
        columns = torch.randint(-2, 3, (B,), generator=generator) if self.shift else None  # (B,) moves right
        source = (torch.arange(B)[:, None] * H + moved).flatten()  # (B * h,) rows of the frames laid end to end

        def move(frames: torch.Tensor) -> torch.Tensor:
            play = frames.reshape(B * H, W, 3)[source].view(B, H - self.hud_rows, W, 3)  # (B * h, W, 3) -> (B, h, W, 3)
            return torch.cat([frames[:, : self.hud_rows], _roll_columns(play, columns)], 1)  # (B, H, W, 3)

        return move(before), move(after)


def _roll_columns(frames: torch.Tensor, columns: torch.Tensor | None) -> torch.Tensor:
    """Frames (B, h, W, 3) -> each moved right by its `columns` (B,) entry, circularly (None: as they are). One
    roll per distinct move: indexing every pixel of a batch took 19 ms a batch of 128 pairs on 2 AVX2 cores."""
    if columns is None:
        return frames
    out = torch.empty_like(frames)
    for move in columns.unique().tolist():
        rows = columns == move  # (B,)
        out[rows] = frames[rows].roll(move, dims=2)
    return out


class TransitionSampler:
    """Random steps of a dataset as (frame before, frame after, termination). `end_share` of a batch is drawn from
    terminations, which are rare (Catch has about 20 in 30k steps), and as much again from the `near` steps just
    before them: there the danger is on screen (a bomb by the catcher, one life left) but the episode goes on, and
    without them the model learned "danger means the end" (on Catch, 3 false alarms next to 12 fresh endings).
    With `real` (the real frames, the shape of `frames`), `real_share` of the rows show the real frames instead:
    the ending itself, not only how the model draws it (on Cave's drawings, with moves: F1 0.837 against 0.74).
    With `rewards` (F,) the batches carry each step's reward sign too, and `reward_share` of the rows come from
    steps with a nonzero reward (about 3% of Catch's steps)."""

    def __init__(self, frames: torch.Tensor, ends: torch.Tensor, valid: torch.Tensor, end_share: float,
                 generator: torch.Generator, near: int = 8, augment: Augment | None = None,
                 real: torch.Tensor | None = None, real_share: float = 0.0, rewards: torch.Tensor | None = None,
                 reward_share: float = 0.0):
        self.frames, self.ends = frames, ends  # (F, H, W, 3) uint8, (F,) bool
        self.real, self.real_share = real, real_share if real is not None else 0.0  # (F, H, W, 3) uint8 or None
        self.steps = torch.nonzero(valid).squeeze(1)  # (S,) frames a step follows
        self.end_steps = torch.nonzero(valid & ends).squeeze(1)  # (E,)
        self.near_steps = _steps_before(self.end_steps, valid & ~ends, near)  # (<= E * near,)
        self.end_share, self.generator, self.augment = end_share, generator, augment
        self.rewards = rewards  # (F,) float or None
        self.reward_steps = (torch.nonzero(valid & (rewards != 0)).squeeze(1) if rewards is not None
                             else torch.zeros(0, dtype=torch.long))  # (R,)
        self.reward_share = reward_share if len(self.reward_steps) else 0.0

    def prior_shift(self) -> float:
        """How much more likely an ending is in these batches than in the data, in log-odds: logit(sampled rate) -
        logit(data rate). A classifier trained on the batches overstates the odds of an ending by this much (2.6
        on Cave, 5.0 on Catch), so at logit 0 it calls an ending where its chance is ~7% (Cave): subtracting it
        (`TerminationNet.correct_prior`) puts the threshold at an even chance. 0 without endings."""
        if not len(self.end_steps):
            return 0.0
        rate = len(self.end_steps) / len(self.steps)
        uniform = 1 - self.end_share * (1 + bool(len(self.near_steps))) - self.reward_share  # rows from all steps
        rewarded_ends = self.ends[self.reward_steps].float().mean().item() if self.reward_share else 0.0
        sampled = self.end_share + uniform * rate + self.reward_share * rewarded_ends
        return math.log(sampled / (1 - sampled)) - math.log(rate / (1 - rate))

    def reward_prior_shift(self) -> list[float]:
        """How much rarer each reward sign (-1, 0, +1) is in the data than in these batches, log p(data) - log
        p(batch): added to a classifier's logits it gives the data's odds (0 for a sign the data never shows)."""
        def signs(pool: torch.Tensor) -> torch.Tensor:
            counts = torch.bincount(torch.sign(self.rewards[pool]).long() + 1, minlength=3).double()  # (3,)
            return counts / max(len(pool), 1)

        e, near = self.end_share if len(self.end_steps) else 0.0, bool(len(self.near_steps))
        pools = ((self.end_steps, e), (self.near_steps, e if near else 0.0), (self.reward_steps, self.reward_share))
        data = signs(self.steps)  # (3,)
        batch = (1 - sum(share for _, share in pools)) * data + sum(share * signs(pool) for pool, share in pools)
        return torch.where(data > 0, data.log() - batch.log(), 0.0).tolist()

    def sample(self, batch: int, device: str | torch.device) -> dict[str, torch.Tensor]:
        """before, after float (B, 3, H, W) in [0, 1]; ends (B,) float; with rewards, reward_signs (B,) long
        (the sign + 1: 0, 1, 2)."""
        g = self.generator
        idx = self.steps[torch.randint(len(self.steps), (batch,), generator=g)]  # (B,)
        draw = torch.rand(batch, generator=g)
        e, r = self.end_share, self.reward_share
        for pool, pick in ((self.end_steps, draw < e), (self.near_steps, (draw >= e) & (draw < 2 * e)),
                           (self.reward_steps, (draw >= 2 * e) & (draw < 2 * e + r))):
            if len(pool):
                idx[pick] = pool[torch.randint(len(pool), (int(pick.sum()),), generator=g)]

        before, after = self.frames[idx], self.frames[idx + 1]  # (B, H, W, 3) uint8 each
        if self.real_share > 0:
            real = torch.rand(batch, generator=g) < self.real_share  # (B,)
            before[real], after[real] = self.real[idx[real]], self.real[idx[real] + 1]
        if self.augment is not None:
            before, after = self.augment(before, after, g)
        batch = {"before": pixels(before, device), "after": pixels(after, device),
                 "ends": self.ends[idx].float().to(device)}
        if self.rewards is not None:
            batch["reward_signs"] = (torch.sign(self.rewards[idx]).long() + 1).to(device)
        return batch


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
    """Termination BCE over a `TransitionSampler` batch (the sampler already over-represents the endings), plus the
    reward sign's cross-entropy for a net with a reward head."""
    logits, reward_logits = net.outcomes(batch["before"], batch["after"])
    loss = F.binary_cross_entropy_with_logits(logits, batch["ends"])
    stats = {"accuracy": ((logits > 0) == batch["ends"].bool()).float().mean().item()}
    if reward_logits is not None:
        reward_loss = F.cross_entropy(reward_logits.float(), batch["reward_signs"])
        loss = loss + reward_loss
        stats |= {"reward_loss": reward_loss.item(),
                  "reward_accuracy": (reward_logits.argmax(-1) == batch["reward_signs"]).float().mean().item()}
    return loss, {"loss": loss.item()} | stats
