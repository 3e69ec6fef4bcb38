"""The termination model: whether a step ended the episode, read off the frame before and the frame after it as
the tokenizer draws them (the reward comes from the dynamics' outcome head, or, with a reward head beside the end
head, `dreamworld train --rewards frames`, off the same two frames).

Why frames and not tokens: a token's code depends on everything in its patch and around it, so "the last life
block vanished" shows as dozens of unrelated codes, and a head over tokens memorises the few endings in the data
(on Catch it fired on 18 of 20 training endings and 0 of 12 fresh ones). In pixels the same event always looks the
same, and a small CNN trained on the tokenizer's reconstructions of the data caught 12 of 12 fresh endings. In a
dream it reads the frames the model drew, so a dream ends when it shows the end.

Why rewards stay with the dynamics by default: the same CNN reads rewards off frames well (F1 0.99 on held-out
steps, 0.97-0.98 on Catch's fresh sets), but in a dream it pays for every flicker of the score digits that
sampling each FSQ digit on its own produces: random play in a Catch dream collected 27 per 500 steps against 2.9
in the game. The dynamics' reward head, which weighs the whole context, stays calibrated (2.1 against 2.9).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    pass


@dataclass
class TerminationConfig:
    """Size of the termination CNN."""

    channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    """channels of the stride-2 4x4 convolutions over the two frames (6 input channels)"""
    hidden: int = 128
    """width of the layer between the flattened feature map and the head (the flattening keeps where things are)"""
    rewards: bool = False
    """also read each step's reward (its sign) off the two frames, with a 3-way head beside the end head: the
    dynamics' reward head sees codes, and on Catch's fresh data it found 0.84-0.88 F1 where this head found
    0.97-0.98 (a caught gem changes the score's digits, whatever the score)"""
    reward_prior_shift: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """what was added to the reward head's logits (signs -1, 0, +1) for the rewards its batches over-represent
    (`TerminationNet.correct_reward_prior`), recorded so the correction is applied once"""
    prior_shift: float = 0.0
    """log-odds already taken off its logits for the endings its batches over-represent
    (`TerminationNet.correct_prior`), recorded so the correction is applied once; 0 in CNNs saved before it"""


class TerminationNet(nn.Module):
    """Frames before and after a step, float (B, 3, H, W) in [0, 1] -> termination logits (B,)."""

    def __init__(self, cfg: TerminationConfig, image_size: int):
        super().__init__()
        self.cfg = cfg
        if image_size % 2 ** len(cfg.channels):
            raise ValueError(f"image size {image_size} is not a multiple of {2 ** len(cfg.channels)}, which the "
                             f"termination CNN's {len(cfg.channels)} stride-2 convolutions need: list fewer channels")
        layers, c_in = [], 6
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.SiLU()]
            c_in = c
        self.conv = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 2 ** len(cfg.channels)
        self.mlp = nn.Sequential(nn.Linear(c_in * side * side, cfg.hidden), nn.SiLU())
        self.end_head = nn.Linear(cfg.hidden, 1)
        self.reward_head = nn.Linear(cfg.hidden, 3) if cfg.rewards else None

    def features(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) twice -> features (B, hidden). The convolutions run channels-last, the layout oneDNN
        is fastest in on the CPU (a training step of 128 pairs on 2 cores: 34 ms against 50 in float32, 21 against
        23 in bfloat16); the flattening reads the map in the usual order either way."""
        x = (torch.cat((before, after), 1) - 0.5).contiguous(memory_format=torch.channels_last)  # (B, 6, H, W)
        return self.mlp(self.conv(x))

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) twice -> termination logits (B,)."""
        return self.end_head(self.features(before, after)).squeeze(-1)  # (B, hidden) -> (B,)

    def outcomes(self, before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, H, W) twice -> termination logits (B,) and reward logits (B, 3) over the sign -1, 0, +1 (None
        without a reward head)."""
        h = self.features(before, after)  # (B, hidden)
        return self.end_head(h).squeeze(-1), None if self.reward_head is None else self.reward_head(h)

    @torch.no_grad()
    def correct_prior(self, shift: float) -> None:
        """Lower every logit by `shift` (`TransitionSampler.prior_shift`): the odds of an ending as in the data,
        not as in the batches that over-represent endings. On the shipped worlds' fresh data this took Cave's F1
        from 0.737 to 0.769 (false alarms 113 -> 45) and Catch's from 0.923 to 0.960. Recorded in the config."""
        self.end_head.bias -= shift
        self.cfg.prior_shift += shift

    @torch.no_grad()
    def correct_reward_prior(self, shift: list[float]) -> None:
        """Add `shift` (`TransitionSampler.reward_prior_shift`) to the reward logits, so each sign is called at the
        odds it has in the data, not in the batches that over-represent rewards. On Catch it changed little (F1
        0.921 held-out either way; random play paid 17.40 per 500 steps in the dream before, 15.15 after, 2.88 in
        the game): the CNN is sure of itself, and the dream's excess comes from its flickering score digits.
        Recorded in the config."""
        self.reward_head.bias += torch.tensor(shift, dtype=self.reward_head.bias.dtype)
        self.cfg.reward_prior_shift = [a + b for a, b in zip(self.cfg.reward_prior_shift, shift, strict=True)]
