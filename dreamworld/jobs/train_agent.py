"""Training an agent inside a world model's dream (or, as a baseline, in the real game), with periodic scoring in
the real game: real return, imagined return (the same protocol inside the dream) and their gap."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from dreamworld import checkpoint as ckpt
from dreamworld.agents import PPO, ActorCriticConfig, DreamActorCritic, Policy, PPOConfig, evaluate, load
from dreamworld.dream.agent_envs import dream_envs, real_envs
from dreamworld.model.precision import Precision, flush_denormals
from dreamworld.model.world_model import WorldModel
from dreamworld.tracking import Tracker


@dataclass
class AgentConfig:
    """How to train an agent in the dream and how often to score it in the real game."""

    algo: Literal["actor-critic", "ppo"] = "actor-critic"
    """actor-critic: DreamerV3-style λ-returns over imagined rollouts; ppo: PPO on the same dreams"""
    obs_type: Literal["latent", "pixels", "objects"] = "latent"
    """what the agent sees: the world model's latent codes (small inputs; the dream skips decoding unless the model
    reads terminations off frames), decoded frames, or the object vectors a built-in game's frame parser reads off
    them (sprite positions and moves, lives; envs/games/object_vector.py)"""
    train_in: Literal["dream", "real"] = "dream"
    """dream: learn only from imagination; real: learn in the real game (a baseline that spends real steps)"""
    steps: int = 200_000
    """env steps to train for (imagined ones in the dream), all envs together"""
    minutes: float | None = None
    """stop after this many minutes even if --steps is not reached"""
    num_envs: int = 32
    """envs (dreams) stepped together"""
    temperature: float = 1.0
    """sampling temperature of the dream's frames"""
    dream_precision: Precision = "auto"
    """precision of the dream's dynamics: bfloat16 doubles imagined steps/s on a CPU with native bfloat16; auto
    takes it where the device has it, float32 otherwise"""
    max_episode_steps: int = 1000
    """dreams are truncated after this many steps"""
    data: str | None = None
    """dataset to draw dream start contexts from (default: the starts saved with the checkpoint)"""
    eval_env: str | None = None
    """real env to score the agent in (default: the env the world model learned)"""
    eval_every: int = 100
    """updates between scorings (K)"""
    eval_episodes: int = 8
    """episodes played at each scoring, in the real game and in the dream (E)"""
    eval_max_steps: int | None = 500
    """cap on the length of those episodes (None: the game's own limit)"""
    final_episodes: int = 20
    """real episodes played at the end, with the game's own time limit (0: skip)"""
    video: bool = True
    """log a video of the agent in the dream and in the real game at each scoring"""
    seed: int = 0
    """seed of the networks, dreams and real envs"""
    device: str = "cpu"
    """where the world model and the agent run: cpu or cuda"""
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    """actor-critic hyperparameters"""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyperparameters"""


def _trainer(envs, cfg: AgentConfig, init: Policy | None):
    net = init.net if init is not None else None
    if cfg.algo == "ppo":
        return PPO(envs, cfg.ppo, net=net, device=cfg.device, seed=cfg.seed)
    return DreamActorCritic(envs, cfg.actor_critic, net=net, device=cfg.device, seed=cfg.seed)


def _check_init(init: Policy, envs, cfg: AgentConfig) -> None:
    if init.obs_type != cfg.obs_type or init.observation_space.shape != envs.single_observation_space.shape or \
            init.action_space != envs.single_action_space:
        raise ValueError(f"the agent to continue observes {init.obs_type} {init.observation_space.shape} and acts "
                         f"in {init.action_space}, but these envs give {cfg.obs_type} "
                         f"{envs.single_observation_space.shape} and take {envs.single_action_space}: start a new "
                         "agent (leave out --init)")


@dataclass
class _Job:
    """What one `train_agent` call works with: the world model (loaded once, shared by every env it makes), the
    real game, the policy being trained and where it logs."""

    cfg: AgentConfig
    checkpoint: str | None
    model: WorldModel | None
    env_id: str
    policy: Policy | None = None
    tracker: Tracker | None = None

    @property
    def fps(self) -> int:
        return self.model.cfg.render_fps if self.model else 30

    def real(self, num_envs: int, **kwargs):
        """`num_envs` real games observed as the agent observes them (latent codes through the shared model)."""
        return real_envs(self.env_id, num_envs, self.cfg.obs_type, model=self.model, device=self.cfg.device, **kwargs)

    def dreams(self, num_envs: int, **kwargs):
        """`num_envs` dreams of the shared model."""
        cfg = self.cfg
        return dream_envs(self.checkpoint, num_envs, obs_type=cfg.obs_type, temperature=cfg.temperature,
                          data=cfg.data, device=cfg.device, precision=cfg.dream_precision, model=self.model,
                          **kwargs)


def _job(checkpoint: str | None, cfg: AgentConfig) -> _Job:
    """Load the world model once and name the real game to score in; refuse what cannot run."""
    model = ckpt.load(checkpoint, cfg.device) if checkpoint else None
    if model is None and (cfg.train_in == "dream" or cfg.obs_type == "latent"):
        raise ValueError("training in the dream or on latent observations needs a world model: pass --checkpoint RUN")
    env_id = cfg.eval_env or (model.cfg.env_id if model else None)
    if not env_id:
        raise ValueError("no real env to score the agent in: pass --eval-env ID")
    return _Job(cfg, checkpoint, model, env_id)


def _score(job: _Job, step: int, record: bool) -> dict:
    """Play E episodes in the real game and E in the dream; log returns, lengths, gap and videos."""
    cfg, tracker = job.cfg, job.tracker
    real = job.real(cfg.eval_episodes, max_episode_steps=cfg.eval_max_steps, render=record)
    result = evaluate(job.policy, real, seed=cfg.seed + 10_000 + step, record=record)
    real.close()
    metrics = {"agent/real_return": result.mean_return, "agent/real_length": result.mean_length}
    if record:
        tracker.video("agent/video_real", result.frames, fps=job.fps, step=step)
    if job.checkpoint:
        dreams = job.dreams(cfg.eval_episodes, max_episode_steps=cfg.eval_max_steps or cfg.max_episode_steps,
                            render_mode="rgb_array" if record else None)
        imagined = evaluate(job.policy, dreams, seed=cfg.seed + 20_000 + step, record=record)
        dreams.close()
        metrics |= {"agent/imagined_return": imagined.mean_return, "agent/imagined_length": imagined.mean_length,
                    "agent/return_gap": imagined.mean_return - result.mean_return}
        if record:
            tracker.video("agent/video_dream", imagined.frames, fps=job.fps, step=step)
    tracker.log(metrics, step=step)
    return metrics


def _log_training(job: _Job, trainer, metrics: dict, recent: list[tuple[float, int]], step: int,
                  seconds: float) -> None:
    """Log the update's losses, the recent training episodes' return and length, and steps/s."""
    logged = {f"agent/{k}": v for k, v in metrics.items()}
    if recent:
        logged |= {"agent/train_return": float(np.mean([r for r, _ in recent])),
                   "agent/train_length": float(np.mean([n for _, n in recent]))}
    job.tracker.log(logged | {"agent/steps_per_s": trainer.steps / seconds}, step=step)


def _final_score(job: _Job, step: int) -> dict:
    """Play the final real episodes with the game's own time limit; their summary entries."""
    cfg = job.cfg
    final = job.real(cfg.final_episodes)
    result = evaluate(job.policy, final, seed=cfg.seed + 30_000)
    final.close()
    job.tracker.log({"agent/final_real_return": result.mean_return}, step=step)
    return {"final_real_return": result.mean_return, "final_real_return_std": float(np.std(result.returns)),
            "final_real_length": result.mean_length, "final_episodes": cfg.final_episodes}


def train_agent(checkpoint: str | None, out: str, cfg: AgentConfig, init: str | None = None,
                wandb: str = "offline", wandb_id: str | None = None, step_offset: int = 0,
                progress: bool = True) -> dict:
    """Train an agent in the dream of the world model in `checkpoint` (or in the real game with train_in="real"),
    scoring it every `eval_every` updates; save it into `out` (config.json + model.safetensors) at every scoring
    and at the end. `init`: an agent directory to continue from. Returns the summary (returns, steps, seconds)."""
    flush_denormals()
    out_dir = Path(out)
    job = _job(checkpoint, cfg)
    if cfg.train_in == "dream":
        envs = job.dreams(cfg.num_envs, max_episode_steps=cfg.max_episode_steps)
    else:
        envs = job.real(cfg.num_envs)
    start = load(init, cfg.device) if init else None
    if start is not None:
        _check_init(start, envs, cfg)
    trainer = _trainer(envs, cfg, start)
    job.policy = Policy(trainer.net, cfg.obs_type, job.env_id, str(checkpoint) if checkpoint else None, cfg.algo)
    job.tracker = tracker = Tracker(wandb, out_dir, {"agent": asdict(cfg), "checkpoint": str(checkpoint)},
                                    job="train-agent", resume_id=wandb_id)
    record = cfg.video and tracker.run is not None

    started, updates, last, history = time.perf_counter(), 0, {}, []
    recent: list[tuple[float, int]] = []
    bar = tqdm(total=cfg.steps, desc=f"train-agent ({cfg.algo}, in the {cfg.train_in})", unit="step",
               disable=not progress, dynamic_ncols=True)
    while trainer.steps < cfg.steps and (cfg.minutes is None or time.perf_counter() - started < 60 * cfg.minutes):
        metrics = trainer.update()
        updates += 1
        bar.update(trainer.steps - bar.n)
        recent = (recent + trainer.runner.pop_episodes())[-100:]
        step = step_offset + trainer.steps
        if updates % 10 == 0:
            _log_training(job, trainer, metrics, recent, step, time.perf_counter() - started)
        if updates % cfg.eval_every == 0:
            last = _score(job, step, record)
            history.append({"step": step, **last})
            bar.set_postfix(real=f"{last['agent/real_return']:.2f}",
                            imagined=f"{last.get('agent/imagined_return', float('nan')):.2f}")
            job.policy.save(out_dir, {"steps": trainer.steps, **last})
    bar.close()
    seconds = time.perf_counter() - started
    step = step_offset + trainer.steps
    last = _score(job, step, record)
    summary = {"steps": trainer.steps, "updates": updates, "seconds": seconds, **last}
    if cfg.final_episodes > 0:
        summary |= _final_score(job, step)
    envs.close()
    job.policy.save(out_dir, {k: v for k, v in summary.items() if isinstance(v, int | float)} | {"history": history})
    summary |= {"env_id": job.env_id, "out": str(out_dir), "wandb_id": tracker.id}
    tracker.summary({k: v for k, v in summary.items() if isinstance(v, int | float)})
    tracker.finish()
    return summary
