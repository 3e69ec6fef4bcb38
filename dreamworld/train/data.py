"""Training data in memory: frames for the tokenizer, token windows for the dynamics, a held-out split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from dreamworld.envs import EpisodeDataset


def split_episodes(ds: EpisodeDataset, holdout: float) -> tuple[list[int], list[int]]:
    """Train and held-out episode indices. Within each policy's episodes (random, scripted, ...) every k-th one
    is held out, at least one per policy that has two or more, so the held-out set has the same mix of play
    (and of terminations) as the training set. Deterministic: the same dataset always splits the same way."""
    n = len(ds)
    if n == 0:
        raise ValueError(f"{ds.path} holds no episodes: collect some first")
    if holdout <= 0:
        return list(range(n)), []
    every = max(2, round(1 / holdout))
    held = []
    for policy in sorted({e.policy for e in ds.episodes}):
        group = [i for i, e in enumerate(ds.episodes) if e.policy == policy]
        if len(group) >= 2:
            held += group[every - 1 :: every] or [group[-1]]
    return [i for i in range(n) if i not in held], sorted(held)


@dataclass
class Steps:
    """Episodes laid end to end: frame i and step i share an index; the last frame of an episode has a dummy
    step with valid = False, so a window never learns across an episode boundary."""

    frames: np.ndarray  # (F, H, W, 3) uint8
    actions: torch.Tensor  # (F, ...) action taken at each frame
    rewards: torch.Tensor  # (F,) float32
    ends: torch.Tensor  # (F,) bool, terminated
    valid: torch.Tensor  # (F,) bool, a real step follows this frame
    episode_start: torch.Tensor  # (F,) long, index of the first frame of each frame's episode


def frames_with_endings(frames: torch.Tensor, terminal: torch.Tensor, size: int, end_share: float,
                        generator: torch.Generator) -> torch.Tensor:
    """`size` frame indices drawn from `frames` (n,), each with chance `end_share` from `terminal` (e,) instead:
    the rare frames an episode ended on, which a uniform draw would seldom show (Catch: ~20 in 30k)."""
    idx = frames[torch.randint(len(frames), (size,), generator=generator)]  # (size,)
    if len(terminal) and end_share > 0:
        pick = torch.rand(size, generator=generator) < end_share
        idx[pick] = terminal[torch.randint(len(terminal), (int(pick.sum()),), generator=generator)]
    return idx


def load_steps(ds: EpisodeDataset, episodes: list[int], progress: bool = True) -> Steps:
    """Read `episodes` of `ds` into one `Steps` (frames stay uint8 numpy)."""
    frames, actions, rewards, ends, valid, starts = [], [], [], [], [], []
    offset = 0
    for i in tqdm(episodes, desc="loading episodes", disable=not progress, leave=False):
        ep = ds.episode(i)
        steps = len(ep["actions"])
        frames.append(ep["frames"])
        actions.append(np.concatenate([ep["actions"], ep["actions"][-1:]]))
        rewards.append(np.concatenate([ep["rewards"], [0.0]]).astype(np.float32))
        ends.append(np.concatenate([ep["terminated"], [False]]))
        valid.append(np.arange(steps + 1) < steps)
        starts.append(np.full(steps + 1, offset))
        offset += steps + 1
    return Steps(np.concatenate(frames), torch.from_numpy(np.concatenate(actions)),
                 torch.from_numpy(np.concatenate(rewards)), torch.from_numpy(np.concatenate(ends)),
                 torch.from_numpy(np.concatenate(valid)), torch.from_numpy(np.concatenate(starts)))


class WindowSampler:
    """Random windows of `length` steps over tokens: uniform over valid starts, and with probability
    `end_share` a window that contains an episode's termination (rare events would otherwise be seldom seen)."""

    def __init__(self, steps: Steps, tokens: torch.Tensor, length: int, end_share: float, seed: int):
        self.steps, self.tokens, self.length, self.end_share = steps, tokens, length, end_share
        total = len(tokens)
        self.starts = torch.nonzero(steps.valid[: total - 1]).squeeze(1)  # (S,)
        self.end_steps = torch.nonzero(steps.ends).squeeze(1)  # (E,)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        """tokens (B, T+1, N), actions (B, T, ...), rewards (B, T), ends (B, T), mask (B, T) of steps to learn."""
        g = self.generator
        starts = self.starts[torch.randint(len(self.starts), (batch,), generator=g)]  # (B,)
        if len(self.end_steps) and self.end_share > 0:
            pick = torch.rand(batch, generator=g) < self.end_share
            ends = self.end_steps[torch.randint(len(self.end_steps), (batch,), generator=g)]
            back = torch.randint(self.length, (batch,), generator=g)
            starts = torch.where(pick, torch.maximum(ends - back, self.steps.episode_start[ends]), starts)
        steps_idx = (starts[:, None] + torch.arange(self.length)).clamp(max=len(self.tokens) - 2)  # (B, T)
        mask = torch.cumprod(self.steps.valid[steps_idx].int(), 1).bool()  # (B, T) steps before any boundary
        frame_idx = torch.cat([steps_idx, steps_idx[:, -1:] + 1], 1)  # (B, T+1)
        return {"tokens": self.tokens[frame_idx], "actions": self.steps.actions[steps_idx],
                "rewards": self.steps.rewards[steps_idx], "ends": self.steps.ends[steps_idx], "mask": mask}


def near_miss_codes(tokens: torch.Tensor, levels: list[int], share: float, generator: torch.Generator) -> torch.Tensor:
    """Tokens (...,) with `share` of them moved to a neighbouring code: one FSQ digit one level up or down (down or
    up at the ends of its range). A neighbouring code draws nearly the same patch, as a dream's unlucky draw does;
    a dynamics model fed such codes as context, and asked for the true next frame, learns to pull a dream back onto
    the frames the game shows."""
    basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), 0)  # (D,)
    levels_t = torch.tensor(levels)  # (D,)
    hit = torch.rand(tokens.shape, generator=generator) < share  # (...,)
    digit = torch.randint(len(levels), tokens.shape, generator=generator)  # (...,) which digit moves
    step = torch.randint(2, tokens.shape, generator=generator) * 2 - 1  # (...,) +1 or -1
    value = tokens // basis[digit] % levels_t[digit]  # (...,) that digit's level
    step = torch.where((value + step < 0) | (value + step >= levels_t[digit]), -step, step)
    return torch.where(hit, tokens + step * basis[digit], tokens)

