"""`dreamworld demo`: the whole project end to end on a CPU in about ten minutes.

Collect real play of the embedded default game (Catch: gems and bombs fall, the paddle moves left or right, the
simplest of the built-in games for an agent), train a tiny world model, measure how well it dreams, train an
actor-critic only inside the dream, and play the real game with it beside the scripted and random policies.
Everything lands in OUT/report/: metrics.json, psnr.png, rollout.mp4/.gif (real | dream | difference),
agent.mp4/.gif (the agent in the real game) and summary.json. Running it again continues: the dataset is kept,
a finished world model is reused and an interrupted one resumes.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from dreamworld import checkpoint as ckpt
from dreamworld.envs import EpisodeDataset, collect, make_env, make_policy
from dreamworld.io import write_json
from dreamworld.media import upscale, write_video
from dreamworld.model.precision import native_bf16
from dreamworld.model.presets import ModelOptions


@dataclass
class DemoConfig:
    """What the demo does and how long each stage may take (defaults: about 10 minutes on a 2-core CPU)."""

    env: str = "Catch"
    """the game: a built-in one (Catch, Bricks, Cave) or any Gymnasium pixel env with a scripted policy"""
    random_steps: int = 10_000
    """real steps played by the random policy (collect stage, a few seconds)"""
    scripted_steps: int = 10_000
    """real steps played by the game's scripted policy (collect stage)"""
    train_minutes: float | None = None
    """time budget of world-model training (tokenizer, then dynamics); default: 5 minutes on a CPU that computes
    bfloat16 natively (AVX512-BF16/AMX), 12 on one that computes float32 only (AVX2: a third of the steps a
    minute; in 5 minutes there the model trailed the copy-last baseline, PSNR h=1 26.07 against 29.39)"""
    train_steps: int | None = None
    """optimisation steps instead of the time budget (the tokenizer's share included)"""
    eval_samples: int = 128
    """held-out rollouts scored by the evaluate stage"""
    horizon: int = 16
    """steps imagined open loop from each real context in the evaluate stage"""
    agent_minutes: float = 2.0
    """time budget of the agent trained in the dream (actor-critic on latent observations)"""
    agent_steps: int = 2_000_000
    """cap on imagined steps of agent training (the time budget usually ends it first)"""
    agent_envs: int = 32
    """dreams stepped together while the agent trains"""
    episodes: int = 20
    """real episodes played by the agent, and by the scripted and random policies for reference"""
    episode_max_steps: int | None = 1000
    """cap on those episodes' length (None: the game's own limit)"""
    video_frames: int = 600
    """frames of the agent's first real episode written to agent.mp4 / agent.gif"""
    seed: int = 0
    """seed of collection, training and scoring"""
    quick: bool = False
    """toy budgets for every stage (a smoke test in well under a minute; its numbers mean nothing)"""


QUICK = {"random_steps": 600, "scripted_steps": 600, "train_steps": 12, "eval_samples": 8, "horizon": 8,
         "agent_steps": 128, "agent_envs": 4, "episodes": 2, "episode_max_steps": 40, "video_frames": 40}
"""The settings `quick` overrides."""


def collect_mixed(env_id: str, data: str | Path, random_steps: int, scripted_steps: int, seed: int = 0,
                  progress: bool = True) -> EpisodeDataset:
    """A dataset of `random_steps` steps of random play followed by `scripted_steps` of scripted play (continues a
    dataset already there). Two passes give exactly that split: `--policy mixed` alternates whole episodes, and
    scripted episodes last far longer than random ones."""
    collect(env_id, data, random_steps, policy="random", seed=seed, num_envs=4, progress=progress)
    collect(env_id, data, random_steps + scripted_steps, policy="scripted", seed=seed + 1, num_envs=4,
            progress=progress)
    return EpisodeDataset(data)


def train_or_resume(data: str | Path, run: Path, train_cfg, wandb: str, model: ModelOptions | None = None) -> dict:
    """Train the world model `model` describes (default: the tiny preset) into `run`: from scratch, resumed after
    an interruption, or not at all when a finished one is there. Returns train()'s summary ({} when it was already
    done)."""
    from dreamworld.train.trainer import train

    if run.exists() and not (run / ckpt.TRAIN_STATE).exists():
        shutil.rmtree(run)  # stopped before its first checkpoint: start again
    model_cfg = (model or ModelOptions()).config()
    if not run.exists():
        return train(str(data), str(run), model_cfg, train_cfg, wandb=wandb)
    if ckpt.load_train_state(run)["phase"] == "done":
        return {}
    return train(str(data), str(run), model_cfg, train_cfg, resume=True, wandb=wandb)


def policy_returns(env_id: str, name: str, episodes: int, max_steps: int | None, seed: int) -> list[float]:
    """Returns of `episodes` real episodes played by the random or scripted policy."""
    env = make_env(env_id, max_episode_steps=max_steps)
    act = make_policy(name, env, seed)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return returns


class _Stages:
    """Wall-clock seconds per stage."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        """Run a stage, announce it and time it."""
        print(f"[demo] {name} ...", flush=True)
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - started
        return result


def default_train_minutes() -> float:
    """The demo's training budget on this machine's CPU: 5 minutes where it computes bfloat16 natively, else 12."""
    if native_bf16("cpu"):
        return 5.0
    print("[demo] this CPU computes float32 only (no AVX512-BF16/AMX): the world model trains for 12 minutes "
          "instead of 5 (--train-minutes sets it)", flush=True)
    return 12.0


def run_demo(cfg: DemoConfig, out: str | Path = "demo", wandb: str = "offline") -> dict:
    """Run every stage into `out` (data/, world_model/, agent/, report/); returns the summary written to
    report/summary.json."""
    from dreamworld.agents import evaluate
    from dreamworld.agents import load as load_agent
    from dreamworld.dream.agent_envs import real_envs
    from dreamworld.evaluate.fidelity import fidelity, write_report
    from dreamworld.jobs.train_agent import AgentConfig, train_agent
    from dreamworld.train.config import DynamicsPhase, TokenizerPhase, TrainConfig
    from dreamworld.train.data import split_episodes

    if cfg.quick:
        cfg = replace(cfg, **QUICK)
    out = Path(out)
    data, run, agent_dir, report = out / "data", out / "world_model", out / "agent", out / "report"
    stages = _Stages()
    ds = stages.run("collect", collect_mixed, cfg.env, data, cfg.random_steps, cfg.scripted_steps, cfg.seed)

    small = ({"tokenizer": TokenizerPhase(batch_size=4), "dynamics": DynamicsPhase(batch_size=4), "warmup_steps": 3,
              "holdout": 0.34} if cfg.quick else {})
    if cfg.train_minutes is None and not cfg.train_steps:
        cfg = replace(cfg, train_minutes=default_train_minutes())
    train_cfg = TrainConfig(minutes=None if cfg.train_steps else cfg.train_minutes, steps=cfg.train_steps,
                            eval_samples=min(cfg.eval_samples, 64), seed=cfg.seed, **small)
    trained = stages.run("train", train_or_resume, data, run, train_cfg, wandb)

    model = ckpt.load(run)
    held = split_episodes(ds, train_cfg.holdout)[1]
    metrics, examples = stages.run("evaluate", fidelity, model, ds, held, horizon=cfg.horizon,
                                   samples=cfg.eval_samples, seed=cfg.seed)
    paths = write_report(report, metrics, examples, model.cfg.render_fps)

    agent_cfg = AgentConfig(steps=cfg.agent_steps, minutes=cfg.agent_minutes, num_envs=cfg.agent_envs,
                            eval_every=10**9 if cfg.quick else 200, eval_episodes=2 if cfg.quick else 4,
                            eval_max_steps=cfg.episode_max_steps, final_episodes=0, seed=cfg.seed)
    agent_summary = stages.run("train-agent", train_agent, str(run), str(agent_dir), agent_cfg, wandb=wandb)

    def score() -> dict:
        policy = load_agent(agent_dir)
        envs = real_envs(model.cfg.env_id, cfg.episodes, policy.obs_type, model=model,
                         max_episode_steps=cfg.episode_max_steps, render=True)
        result = evaluate(policy, envs, seed=cfg.seed + 60_000, record=True)
        envs.close()
        video = upscale(result.frames[: cfg.video_frames], 4)
        paths["agent_video"] = write_video(report / "agent.mp4", video, model.cfg.render_fps)
        paths["agent_gif"] = write_video(report / "agent.gif", video, model.cfg.render_fps)
        scores = {"agent": result.returns}
        for name in ("scripted", "random"):
            scores[name] = policy_returns(model.cfg.env_id, name, cfg.episodes, cfg.episode_max_steps,
                                          cfg.seed + 70_000)
        return {name: {"mean_return": float(np.mean(r)), "std_return": float(np.std(r)), "episodes": len(r)}
                for name, r in scores.items()}

    returns = stages.run("evaluate agent", score)
    summary = {"env": model.cfg.env_id, "config": asdict(cfg), "stage_seconds": stages.seconds,
               "total_seconds": sum(stages.seconds.values()), "real_steps": sum(e.steps for e in ds.episodes),
               "world_model": {k: trained[k] for k in ("train_seconds", "train_episodes", "heldout_episodes")
                               if k in trained},
               "fidelity": {k: metrics[k] for k in ("psnr", "baseline_psnr", "ssim", "reconstruction_psnr",
                                                   "reward_f1", "termination_f1", "rollouts", "horizon")},
               "agent": {"imagined_steps": agent_summary["steps"], "seconds": agent_summary["seconds"],
                         "imagined_return": agent_summary.get("agent/imagined_return")},
               "real_returns": returns, "paths": {k: str(v) for k, v in paths.items()} | {
                   "summary": str(report / "summary.json"), "data": str(data), "world_model": str(run),
                   "agent": str(agent_dir)}}
    write_json(report / "summary.json", summary)
    return summary
