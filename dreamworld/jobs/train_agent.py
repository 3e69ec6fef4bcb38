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


def train_agent(checkpoint: str | None, out: str, cfg: AgentConfig, init: str | None = None,
                wandb: str = "offline", wandb_id: str | None = None, step_offset: int = 0,
                progress: bool = True) -> dict:
    """Train an agent in the dream of the world model in `checkpoint` (or in the real game with train_in="real"),
    scoring it every `eval_every` updates; save it into `out` (config.json + model.safetensors) at every scoring
    and at the end. `init`: an agent directory to continue from. Returns the summary (returns, steps, seconds)."""
    flush_denormals()
    out_dir = Path(out)
    model = ckpt.load(checkpoint, cfg.device) if checkpoint else None
    if model is None and (cfg.train_in == "dream" or cfg.obs_type == "latent"):
        raise ValueError("training in the dream or on latent observations needs a world model: pass --checkpoint RUN")
    env_id = cfg.eval_env or (model.cfg.env_id if model else None)
    if not env_id:
        raise ValueError("no real env to score the agent in: pass --eval-env ID")
    dream_kwargs = {"obs_type": cfg.obs_type, "temperature": cfg.temperature, "data": cfg.data,
                    "device": cfg.device, "precision": cfg.dream_precision}
    if cfg.train_in == "dream":
        envs = dream_envs(checkpoint, cfg.num_envs, max_episode_steps=cfg.max_episode_steps, **dream_kwargs)
    else:
        envs = real_envs(env_id, cfg.num_envs, cfg.obs_type, model=model, device=cfg.device)
    policy = load(init, cfg.device) if init else None
    if policy is not None:
        _check_init(policy, envs, cfg)
    trainer = _trainer(envs, cfg, policy)
    policy = Policy(trainer.net, cfg.obs_type, env_id, str(checkpoint) if checkpoint else None, cfg.algo)
    tracker = Tracker(wandb, out_dir, {"agent": asdict(cfg), "checkpoint": str(checkpoint)}, job="train-agent",
                      resume_id=wandb_id)
    fps = model.cfg.render_fps if model else 30

    def score(step: int, record: bool) -> dict:
        """Play E episodes in the real game and E in the dream; log returns, lengths, gap and videos."""
        real = real_envs(env_id, cfg.eval_episodes, cfg.obs_type, model=model, device=cfg.device,
                         max_episode_steps=cfg.eval_max_steps, render=record)
        result = evaluate(policy, real, seed=cfg.seed + 10_000 + step, record=record)
        real.close()
        metrics = {"agent/real_return": result.mean_return, "agent/real_length": result.mean_length}
        if record:
            tracker.video("agent/video_real", result.frames, fps=fps, step=step)
        if checkpoint:
            dreams = dream_envs(checkpoint, cfg.eval_episodes, max_episode_steps=cfg.eval_max_steps or
                                cfg.max_episode_steps, render_mode="rgb_array" if record else None, **dream_kwargs)
            imagined = evaluate(policy, dreams, seed=cfg.seed + 20_000 + step, record=record)
            dreams.close()
            metrics |= {"agent/imagined_return": imagined.mean_return, "agent/imagined_length": imagined.mean_length,
                        "agent/return_gap": imagined.mean_return - result.mean_return}
            if record:
                tracker.video("agent/video_dream", imagined.frames, fps=fps, step=step)
        tracker.log(metrics, step=step)
        return metrics

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
            logged = {f"agent/{k}": v for k, v in metrics.items()}
            if recent:
                logged |= {"agent/train_return": float(np.mean([r for r, _ in recent])),
                           "agent/train_length": float(np.mean([n for _, n in recent]))}
            tracker.log(logged | {"agent/steps_per_s": trainer.steps / (time.perf_counter() - started)}, step=step)
        if updates % cfg.eval_every == 0:
            last = score(step, record=cfg.video and tracker.run is not None)
            history.append({"step": step, **last})
            bar.set_postfix(real=f"{last['agent/real_return']:.2f}",
                            imagined=f"{last.get('agent/imagined_return', float('nan')):.2f}")
            policy.save(out_dir, {"steps": trainer.steps, **last})
    bar.close()
    seconds = time.perf_counter() - started
    step = step_offset + trainer.steps
    last = score(step, record=cfg.video and tracker.run is not None)
    summary = {"steps": trainer.steps, "updates": updates, "seconds": seconds, **last}
    if cfg.final_episodes > 0:
        final = real_envs(env_id, cfg.final_episodes, cfg.obs_type, model=model, device=cfg.device)
        result = evaluate(policy, final, seed=cfg.seed + 30_000)
        final.close()
        summary |= {"final_real_return": result.mean_return, "final_real_return_std": float(np.std(result.returns)),
                    "final_real_length": result.mean_length, "final_episodes": cfg.final_episodes}
        tracker.log({"agent/final_real_return": result.mean_return}, step=step)
    envs.close()
    policy.save(out_dir, {k: v for k, v in summary.items() if isinstance(v, int | float)} | {"history": history})
    summary |= {"env_id": env_id, "out": str(out_dir), "wandb_id": tracker.id}
    tracker.summary({k: v for k, v in summary.items() if isinstance(v, int | float)})
    tracker.finish()
    return summary
