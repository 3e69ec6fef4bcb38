"""`EpisodeBuffer`: the steps of one episode in flight, as a dataset stores them (used by collect and by play)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dataset import EpisodeInfo
from .dataset_writer import DatasetWriter


@dataclass
class EpisodeBuffer:
    """One episode being played: frames (T+1), actions, rewards, terminated, truncated (T each)."""

    frames: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    terminated: list = field(default_factory=list)
    truncated: list = field(default_factory=list)

    def add(self, action, reward: float, terminated: bool, truncated: bool, frame: np.ndarray) -> None:
        """Record one step and the frame it led to."""
        self.actions.append(action)
        self.rewards.append(reward)
        self.terminated.append(terminated)
        self.truncated.append(truncated)
        self.frames.append(frame)

    def copy(self) -> EpisodeBuffer:
        """A copy whose lists can be written out while play goes on."""
        return EpisodeBuffer(list(self.frames), list(self.actions), list(self.rewards), list(self.terminated),
                             list(self.truncated))

    def cut(self, steps: int) -> None:
        """Forget everything after `steps` steps (a rewind)."""
        for name in ("actions", "rewards", "terminated", "truncated"):
            del getattr(self, name)[steps:]
        del self.frames[steps + 1 :]

    def write(self, writer: DatasetWriter, policy: str) -> EpisodeInfo:
        """Store the episode in `writer`'s dataset, tagged with the policy that played it."""
        return writer.add_episode(np.stack(self.frames), np.asarray(self.actions), np.asarray(self.rewards),
                                  np.asarray(self.terminated), np.asarray(self.truncated), policy=policy)
