"""`PlaySession`: the dream a person plays, frame by frame, with exact rewind and the real game beside it.

Rewind keeps one `Snapshot` per frame (the current tokens, the sampling generator's state, the real env copied)
and the keys and values each frame added to the KV cache. Going back to frame i rebuilds the cache from the
rows of frames i-W+1 .. i-1, the same values the cache held then, so replaying the same actions from there gives
the same frames (the same sampled ones too: the generator state comes back as well). Memory: one frame's rows
are 2 x layers x tokens x d_model floats (131 KB for the tiny preset), so 10 s at 30 fps cost about 40 MB.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from dreamworld.dream.starts import StartContexts
from dreamworld.envs import EpisodeBuffer
from dreamworld.model.dynamics import KVCache
from dreamworld.model.world_model import DreamState, WorldModel


def _copy_rows(cache: KVCache, positions: slice) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, copies of the cached keys and values (1, H, n, D) at token `positions` (copies: a view would
    keep the whole cache tensor alive)."""
    return [(k[:, :, positions].clone(), v[:, :, positions].clone())
            for k, v in zip(cache.keys, cache.values, strict=True)]


@dataclass
class Snapshot:
    """Everything needed to make one past frame the current one again."""

    frame: int  # the KV cache's frame index while this frame is current
    tokens: torch.Tensor  # (1, N) tokens of the frame
    generator: torch.Tensor  # sampling generator state
    image: np.ndarray  # (H, W, 3) the decoded frame
    step: int  # steps since the start
    episode_return: float
    real: gym.Env | None  # a copy of the real env at this frame (None: no real game beside the dream)
    real_image: np.ndarray | None
    real_done: bool


class PlaySession:
    """One dream of `model`, stepped one action at a time, with rewind over the last `rewind_frames` frames.

    `compare=True` plays the real game `model.cfg.env_id` beside the dream: both start from one fresh real reset
    (its first frames become the dream's start context) and receive the same actions.
    """

    def __init__(self, model: WorldModel, starts: StartContexts, *, temperature: float = 1.0,
                 rewind_frames: int = 300, seed: int = 0):
        self.model, self.starts = model, starts
        self.temperature = float(temperature)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device=model.device)
        self.history: deque[Snapshot] = deque(maxlen=rewind_frames + 1)
        self.rows: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}  # frame -> per layer (1, H, N, D) k, v
        self.real_env: gym.Env | None = None
        self.real_copyable = True
        self.compare = False
        self.state: DreamState | None = None
        self.dream, self.real = EpisodeBuffer(), EpisodeBuffer()

    @property
    def current(self) -> Snapshot:
        """The frame on screen."""
        return self.history[-1]

    def set_compare(self, on: bool) -> None:
        """Show the real game beside the dream (making it on first use; both restart) or stop showing it."""
        if on and self.real_env is None:
            from dreamworld.envs import make_env

            self.real_env = make_env(self.model.cfg.env_id)  # ImportError / ValueError when not installed here
        self.compare = on
        if on:
            self.reset()

    def reset(self) -> None:
        """A new dream from a real start: a context from the start contexts, or, when comparing, the first frames
        of a fresh reset of the real game (played with no-ops), which then runs beside the dream."""
        from dreamworld.envs import noop_action_for

        K = self.starts.length
        self.generator.manual_seed(int(self.rng.integers(2**63 - 1)))
        real_done = False
        if self.compare:
            noop = noop_action_for(self.model.cfg.env_id, self.model.action_space)
            obs, _ = self.real_env.reset(seed=int(self.rng.integers(2**31 - 1)))
            frames, actions = [obs], []
            for _ in range(K - 1):
                obs, _, terminated, truncated, _ = self.real_env.step(noop)
                frames.append(obs)
                actions.append(noop)
                real_done = real_done or terminated or truncated
            frames, actions = np.stack(frames), np.stack(actions)  # (K, H, W, 3), (K-1, ...)
        else:
            frames, actions = self.starts.draw(self.rng)
        self.state = self.model.start(torch.from_numpy(frames[None]), actions[None])
        cache, N = self.state.cache, self.model.tokenizer.tokens_per_frame
        self.rows = {cache.frame - (K - 1) + j: _copy_rows(cache, slice(j * N, (j + 1) * N)) for j in range(K - 1)}
        image = self.model.frames(self.state)[0].cpu().numpy()  # (H, W, 3)
        real_image = frames[-1] if self.compare else None
        self.history.clear()
        self.history.append(Snapshot(cache.frame, self.state.tokens.clone(), self.generator.get_state(), image, 0,
                                     0.0, self._copy_real(), real_image, real_done))
        self.dream = EpisodeBuffer(frames=[image])
        self.real = EpisodeBuffer(frames=[real_image] if self.compare else [])

    def step(self, action) -> tuple[float, bool]:
        """Advance the dream (and the real game) by one action -> the dream's reward and termination."""
        now, cache = self.current, self.state.cache
        frame = cache.frame
        actions = np.expand_dims(np.asarray(action), 0)  # (1, *action shape)
        images, rewards, terminated = self.model.step(self.state, actions, self.temperature, self.generator)
        N = self.model.tokenizer.tokens_per_frame
        self.rows[frame] = _copy_rows(cache, slice(-N, None))  # the rows this step added
        reward, ended = float(rewards[0]), bool(terminated[0])
        image = images[0].cpu().numpy()  # (H, W, 3)
        self.dream.add(action, reward, ended, False, image)
        real_image, real_done = now.real_image, now.real_done
        if self.compare and not real_done:
            real_image, real_reward, real_end, real_cut, _ = self.real_env.step(action)
            real_done = bool(real_end or real_cut)
            self.real.add(action, float(real_reward), bool(real_end), bool(real_cut), real_image)
        self.history.append(Snapshot(cache.frame, self.state.tokens.clone(), self.generator.get_state(), image,
                                     now.step + 1, now.episode_return + reward, self._copy_real(), real_image,
                                     real_done))
        oldest = self.history[0].frame - (self.starts.length - 1)
        for old in [f for f in self.rows if f < oldest]:
            del self.rows[old]
        return reward, ended

    def rewind(self) -> bool:
        """Go back one frame (False when no earlier frame is kept). Playing on from there starts a new branch. A
        real game that cannot be copied cannot go back: comparing stops (V restarts both)."""
        if len(self.history) < 2:
            return False
        self.history.pop()
        back = self.current
        K = self.starts.length
        layers = zip(*(self.rows[f] for f in range(back.frame - (K - 1), back.frame)), strict=True)  # K-1 (k, v) each
        keys_values = [(torch.cat([k for k, _ in rows], 2), torch.cat([v for _, v in rows], 2)) for rows in layers]
        cache = self.state.cache
        cache.keys = [k for k, _ in keys_values]  # each (1, H, (K-1) * N, D)
        cache.values = [v for _, v in keys_values]
        cache.frame = back.frame
        self.state.tokens = back.tokens.clone()
        self.generator.set_state(back.generator)
        for f in [f for f in self.rows if f >= back.frame]:
            del self.rows[f]
        if self.compare and back.real is None:
            self.compare = False  # the real game cannot go back with the dream
        elif self.compare:
            self.real_env = copy.deepcopy(back.real)
        self.dream.cut(back.step)
        self.real.cut(back.step)
        return True

    def episode(self) -> tuple[EpisodeBuffer, str]:
        """The episode so far, for a dataset: the real game's when it runs beside the dream (then the frames are
        real ones, good for training a world model), else the dream's; and which of the two ("real", "dream")."""
        return (self.real, "real") if self.compare else (self.dream, "dream")

    def difference(self) -> tuple[float, float] | None:
        """How far the dream is from the real game on this frame: mean absolute difference (0-255) and PSNR (dB);
        None when not comparing."""
        now = self.current
        if not self.compare or now.real_image is None:
            return None
        diff = now.image.astype(np.float32) - now.real_image.astype(np.float32)  # (H, W, 3)
        mse = float(np.mean(diff**2))
        return float(np.mean(np.abs(diff))), 10 * np.log10(255**2 / max(mse, 1e-10))

    def _copy_real(self) -> gym.Env | None:
        """A copy of the real env's state for rewind (None when not comparing, or when the env cannot be copied)."""
        if not self.compare or not self.real_copyable:
            return None
        try:
            return copy.deepcopy(self.real_env)
        except Exception:  # envs holding native handles (emulators, physics engines) may refuse to be copied
            self.real_copyable = False
            return None
