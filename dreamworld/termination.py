"""The outcome model: a step's reward sign and termination, read off the frame before and the frame after it as the
tokenizer draws them.

Why frames and not tokens: a token's code depends on everything in its patch and around it, so "the last life
block vanished" shows as dozens of unrelated codes, and an outcome head over tokens memorises the few endings in
the data (on Catch it fired on 18 of 20 training endings and 0 of 12 fresh ones). In pixels the same event
always looks the same, and a small CNN trained on the tokenizer's reconstructions of the data caught 12 of 12 fresh
endings. In a dream it reads the frames the model drew, so events agree with what is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .tokenizer import Tokenizer

REWARD_CLASSES = 3  # reward sign: negative, zero, positive


@dataclass
class OutcomeConfig:
    """Size of the outcome CNN."""

    channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    """channels of the stride-2 4x4 convolutions over the two frames (6 input channels)"""
    hidden: int = 128
    """width of the layer between the flattened feature map and the heads (the flattening keeps where things are)"""


class OutcomeNet(nn.Module):
    """Frames before and after a step, float (B, 3, H, W) in [0, 1] -> reward-sign logits (B, 3) and termination
    logits (B,)."""

    def __init__(self, cfg: OutcomeConfig, image_size: int):
        super().__init__()
        if image_size % 2 ** len(cfg.channels):
            raise ValueError(f"image size {image_size} is not a multiple of {2 ** len(cfg.channels)}, which the "
                             f"outcome CNN's {len(cfg.channels)} stride-2 convolutions need: list fewer channels")
        layers, c_in = [], 6
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.SiLU()]
            c_in = c
        self.conv = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 2 ** len(cfg.channels)
        self.mlp = nn.Sequential(nn.Linear(c_in * side * side, cfg.hidden), nn.SiLU())
        self.reward_head = nn.Linear(cfg.hidden, REWARD_CLASSES)
        self.end_head = nn.Linear(cfg.hidden, 1)

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) twice -> reward logits (B, 3), termination logits (B,)."""
        x = torch.cat((before, after), 1) - 0.5  # (B, 6, H, W)
        z = self.mlp(self.conv(x))  # (B, hidden)
        return self.reward_head(z), self.end_head(z).squeeze(-1)


@torch.no_grad()
def reconstruct(tokenizer: Tokenizer, tokens: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Tokens (F, N) -> the tokenizer's drawing of them, uint8 (F, H, W, 3) on the CPU (what the outcome model
    learns from: the frames a dream shows, not the real ones)."""
    return torch.cat([tokenizer.decode_uint8(tokens[i : i + batch]).cpu() for i in range(0, len(tokens), batch)])


class TransitionSampler:
    """Random steps of a dataset as (frame before, frame after, reward sign, termination). A batch draws
    `end_share` of its steps from terminations and `reward_share` from rewarded steps: they are rare (Catch has
    about 20 endings in 30k steps) and would otherwise be seldom seen."""

    def __init__(self, frames: torch.Tensor, rewards: torch.Tensor, ends: torch.Tensor, valid: torch.Tensor,
                 end_share: float, reward_share: float, generator: torch.Generator):
        self.frames, self.rewards, self.ends = frames, rewards, ends  # (F, H, W, 3) uint8, (F,), (F,)
        self.steps = torch.nonzero(valid).squeeze(1)  # (S,) frames a step follows
        self.pools = [(torch.nonzero(valid & ends).squeeze(1), end_share),
                      (torch.nonzero(valid & (rewards != 0)).squeeze(1), reward_share)]
        self.generator = generator

    def sample(self, batch: int, device: str | torch.device) -> dict[str, torch.Tensor]:
        """before, after float (B, 3, H, W) in [0, 1]; reward_class (B,) long; ends (B,) float."""
        g = self.generator
        idx = self.steps[torch.randint(len(self.steps), (batch,), generator=g)]  # (B,)
        pick = torch.rand(batch, generator=g)  # which pool each row draws from
        low = 0.0
        for pool, share in self.pools:
            rows = (pick >= low) & (pick < low + share)
            if len(pool) and rows.any():
                idx[rows] = pool[torch.randint(len(pool), (int(rows.sum()),), generator=g)]
            low += share

        def pixels(i: torch.Tensor) -> torch.Tensor:
            return self.frames[i].to(device).permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)

        return {"before": pixels(idx), "after": pixels(idx + 1),
                "reward_class": (torch.sign(self.rewards[idx]) + 1).long().to(device),
                "ends": self.ends[idx].float().to(device)}


def outcome_loss(net: OutcomeNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Reward-sign cross-entropy plus termination BCE over a `TransitionSampler` batch (the sampler already
    over-represents the rare events, so the terms are unweighted)."""
    reward_logits, end_logits = net(batch["before"], batch["after"])
    reward_loss = F.cross_entropy(reward_logits, batch["reward_class"])
    end_loss = F.binary_cross_entropy_with_logits(end_logits, batch["ends"])
    total = reward_loss + end_loss
    reward_acc = (reward_logits.argmax(-1) == batch["reward_class"]).float().mean()
    return total, {"loss": total.item(), "reward_loss": reward_loss.item(), "end_loss": end_loss.item(),
                   "reward_accuracy": reward_acc.item()}
