"""Is the dream as rewarding and as deadly as the real game? The same protocol in both, in closed loop.

An agent trained in a dream learns the dream's game. If random play collects twice the reward in the dream, or
dies there half as often, the agent will learn a game easier than the real one and its real return will lag its
imagined one. `random_play` measures that gap before any agent is trained. `graded_play` goes further for the
built-in games: policies from a frame-reading heuristic (envs/games/heuristics.py) down to random play, each
played in the dream and in the real game, show whether the dream pays, ends and ranks policies as the game does.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np

from dreamworld.agents import evaluate
from dreamworld.dream.agent_envs import dream_envs, real_envs
from dreamworld.envs.games.heuristics import Decide, decider
from dreamworld.envs.games.objects import KINDS, parse
from dreamworld.envs.games.sprites import FrameObjects

EPSILONS = (0.0, 0.25, 0.5, 1.0)
"""Shares of random actions of the graded policies: the heuristic alone, then ever more random, then random."""
VIDEO_FRAMES = 300
"""Frames of the best policy's episodes kept for the real | dream video."""


class RandomActions:
    """A policy that acts uniformly at random in `space` (seeded), for `dreamworld.agents.evaluate`."""

    def __init__(self, space: gym.Space, seed: int):
        self.space = space
        self.space.seed(seed)

    def act(self, obs, deterministic: bool = False):
        """One random action per row of `obs`."""
        return self.space.sample()


def _play(envs: gym.vector.VectorEnv, seed: int) -> tuple[float, float, float]:
    """One random-play episode per env: mean return, share of episodes that terminated, mean length."""
    result = evaluate(RandomActions(envs.action_space, seed), envs, seed=seed)
    envs.close()
    episodes = len(result.lengths)
    return result.mean_return, sum(result.terminated) / episodes, sum(result.lengths) / episodes


def random_play(checkpoint: str | os.PathLike, env_id: str, steps: int = 500, episodes: int = 16, seed: int = 0,
                device: str = "cpu") -> dict:
    """`episodes` random-play episodes of at most `steps` steps in the dream of `checkpoint` and in the real game
    `env_id`: mean return, share of episodes that terminated, mean length, and the dream/real return ratio (1 is
    calibrated)."""
    dream_return, dream_terminated, dream_length = _play(
        dream_envs(checkpoint, episodes, max_episode_steps=steps, device=device), seed)
    real_return, real_terminated, real_length = _play(
        real_envs(env_id, episodes, "pixels", max_episode_steps=steps), seed)
    return {"steps": steps, "episodes": episodes, "dream_return": dream_return, "real_return": real_return,
            "return_ratio": dream_return / real_return if real_return else None,
            "dream_terminated": dream_terminated, "real_terminated": real_terminated,
            "dream_length": dream_length, "real_length": real_length}


def spearman(a, b) -> float | None:
    """Spearman rank correlation of two equally long sequences (ties get their average rank); None when it is
    undefined (fewer than 2 values, or one side constant)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"spearman needs two 1-D sequences of one length, got shapes {a.shape} and {b.shape}")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = np.sqrt((ra**2).sum() * (rb**2).sum())
    if len(a) < 2 or norm == 0:
        return None
    return float(np.clip((ra * rb).sum() / norm, -1.0, 1.0))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `x` (n,), tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse = np.unique(x, return_inverse=True)
    sums, counts = np.bincount(inverse, weights=ranks), np.bincount(inverse)
    return sums[inverse] / counts[inverse]


class EpsilonHeuristic:
    """Per row, the heuristic's action with probability 1 - epsilon, else a uniformly random one (seeded); rows
    that no longer play get the space's first action, unread."""

    def __init__(self, decide: Decide, space: gym.spaces.Discrete, epsilon: float, seed: int):
        self.decide, self.space, self.epsilon = decide, space, float(epsilon)
        self.rng = np.random.default_rng(seed)

    def __call__(self, frames: np.ndarray, objects: list[FrameObjects | None]) -> np.ndarray:
        """Actions (N,) for frames (N, H, W, 3) and their parsed objects (None for rows not playing)."""
        n = len(frames)
        explore = self.rng.random(n) < self.epsilon  # drawn for every row: the stream does not depend on who plays
        random = self.space.start + self.rng.integers(self.space.n, size=n)
        actions = np.full(n, self.space.start, dtype=np.int64)
        for i, parsed in enumerate(objects):
            if parsed is not None:
                actions[i] = random[i] if explore[i] else self.decide(frames[i], parsed)
        return actions


def _play_rows(envs: gym.vector.VectorEnv, policy: EpsilonHeuristic, game: str, steps: int, seed: int) -> dict:
    """One episode per row of `envs` (at most `steps` steps; a row that ended is stepped on but no longer counted,
    as NEXT_STEP autoreset restarts it): totals of steps, reward and terminations, per-row returns, frames with
    each kind in sight, and row 0's first VIDEO_FRAMES frames."""
    obs, _ = envs.reset(seed=seed)
    n = envs.num_envs
    playing, returns, lengths = np.ones(n, bool), np.zeros(n), np.zeros(n, np.int64)
    ends, seen = 0, dict.fromkeys(KINDS[game], 0)
    video = [np.array(obs[0], np.uint8)]
    for _ in range(steps):
        objects = [parse(game, obs[i]) if playing[i] else None for i in range(n)]
        for parsed in filter(None, objects):
            for kind in {s.kind for s in parsed.sprites}:
                seen[kind] += 1
        obs, rewards, terminated, truncated, _ = envs.step(policy(obs, objects))
        returns += np.where(playing, rewards, 0.0)
        lengths += playing
        ends += int((playing & terminated).sum())
        if playing[0] and len(video) < VIDEO_FRAMES:
            video.append(np.array(obs[0], np.uint8))
        playing &= ~(terminated | truncated)
        if not playing.any():
            break
    return {"steps": int(lengths.sum()), "reward": float(returns.sum()), "ends": ends, "returns": returns,
            "seen": seen, "video": np.stack(video)}


def _world_metrics(played: dict) -> dict:
    """reward_per_step, end_rate (terminations per step), mean return and length, presence per kind (share of
    played frames showing it) of one policy in one world."""
    steps = max(played["steps"], 1)
    return {"reward_per_step": played["reward"] / steps, "end_rate": played["ends"] / steps,
            "return": float(played["returns"].mean()), "length": played["steps"] / len(played["returns"]),
            "presence": {kind: count / steps for kind, count in played["seen"].items()}}


def _ratio(dream: float, real: float) -> float | None:
    """dream / real, None when real is 0 (1 is calibrated)."""
    return dream / real if real else None


def _compare(epsilon: float, dream: dict, real: dict) -> dict:
    """One policy's row: its metrics in both worlds, the dream/real ratios and the presence gap in points."""
    return {"epsilon": epsilon, "dream": dream, "real": real,
            "reward_ratio": _ratio(dream["reward_per_step"], real["reward_per_step"]),
            "end_ratio": _ratio(dream["end_rate"], real["end_rate"]),
            "presence_gap": {kind: 100 * (dream["presence"][kind] - real["presence"][kind])
                             for kind in dream["presence"]}}


def _open_worlds(checkpoint, env_id: str, steps: int, episodes: int, device: str,
                 temperature: float) -> dict[str, gym.vector.VectorEnv]:
    """The dream (pixels) and the real game, `episodes` rows each, truncated after `steps` steps; their action
    spaces must agree."""
    worlds = {"dream": dream_envs(checkpoint, episodes, "pixels", max_episode_steps=steps, device=device,
                                  temperature=temperature),
              "real": real_envs(env_id, episodes, "pixels", max_episode_steps=steps)}
    spaces = {name: envs.single_action_space for name, envs in worlds.items()}
    if spaces["dream"] != spaces["real"] or not isinstance(spaces["real"], gym.spaces.Discrete):
        for envs in worlds.values():
            envs.close()
        raise ValueError(f"the dream of {checkpoint} acts in {spaces['dream']} but {env_id} in {spaces['real']}: "
                         "closed-loop play needs the same Discrete actions")
    return worlds


def graded_play(checkpoint: str | os.PathLike, env_id: str, steps: int = 500, episodes: int = 8,
                epsilons=EPSILONS, seed: int = 0, device: str = "cpu", temperature: float = 1.0) -> dict:
    """Closed-loop test of a dream: for each epsilon, the heuristic of `env_id` taking a random action with
    probability epsilon plays one episode (at most `steps` steps) in each of `episodes` dreams of `checkpoint`
    and in as many real games. Per policy and world: reward_per_step, end_rate, return, length and presence per
    kind; per policy the dream/real ratios and presence gaps (points); over the policies the Spearman rank
    correlation of dream and real reward_per_step. "frames": row 0's first VIDEO_FRAMES frames of the heuristic
    alone (the smallest epsilon) in each world, uint8 (T, H, W, 3), for a real | dream video."""
    found = decider(env_id)
    if found is None:
        raise ValueError(f"{env_id} has no heuristic policy (envs/games/heuristics.py): no closed-loop play")
    game, decide = found
    worlds = _open_worlds(checkpoint, env_id, steps, episodes, device, temperature)
    policies, frames = [], {}
    try:
        for epsilon in sorted(epsilons):
            played = {name: _play_rows(envs, EpsilonHeuristic(decide, envs.single_action_space, epsilon, seed), game,
                                       steps, seed) for name, envs in worlds.items()}
            frames = frames or {name: p["video"] for name, p in played.items()}
            policies.append(_compare(epsilon, _world_metrics(played["dream"]), _world_metrics(played["real"])))
    finally:
        for envs in worlds.values():
            envs.close()
    rank = spearman([p["dream"]["reward_per_step"] for p in policies], [p["real"]["reward_per_step"] for p in policies])
    return {"env_id": env_id, "steps": steps, "episodes": episodes, "temperature": temperature, "seed": seed,
            "policies": policies, "rank_correlation": rank, "frames": frames}


def write_closed_loop_video(path: str | os.PathLike, frames: dict[str, np.ndarray], fps: int,
                            scale: int = 3, gap: int = 2) -> Path:
    """Write `graded_play`'s frames as one video, real | dream side by side (the shorter episode holds its last
    frame to the end of the longer)."""
    from dreamworld.media import upscale, write_video

    real, dream = frames["real"], frames["dream"]
    length = max(len(real), len(dream))
    real, dream = (np.concatenate([f, np.repeat(f[-1:], length - len(f), axis=0)]) for f in (real, dream))
    sep = np.full((length, real.shape[1], gap, 3), 64, np.uint8)  # (T, H, gap, 3)
    return write_video(path, upscale(np.concatenate([real, sep, dream], axis=2), scale), fps)
