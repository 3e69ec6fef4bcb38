"""The full loop, as in IRIS and DIAMOND: collect real steps with the current agent, train the world model on all
data so far, train the agent in the model's dream, score it in the real game; repeat until the real-step cap.

DIR holds data/ (the episode dataset), world_model/ (one run, trained further each iteration), agent/ (the policy)
and loop.json, the state of the loop (iteration, stage, real steps used, history), written atomically after each
stage. Every stage can be killed and run again: collection continues the dataset to the iteration's target,
the world model resumes from its last checkpoint, the agent stage starts again from the last saved policy.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from dreamworld import checkpoint as ckpt
from dreamworld.dream.agent_envs import frame_policy, real_envs
from dreamworld.envs import collect
from dreamworld.io import write_json
from dreamworld.jobs.train_agent import AgentConfig, train_agent
from dreamworld.model.presets import ModelOptions
from dreamworld.train.config import TrainConfig
from dreamworld.train.trainer import train

STATE = "loop.json"
STAGES = ("collect", "world_model", "agent")


@dataclass
class LoopConfig:
    """Budget and schedule of the loop (the world model's and the agent's own settings are nested)."""

    real_steps: int = 100_000
    """cap on real env steps collected (the size of the dataset); scoring episodes are not counted"""
    steps_per_iteration: int = 10_000
    """real steps collected per iteration"""
    first_policy: Literal["random", "mixed", "scripted"] = "random"
    """who plays in the first iteration, before there is an agent"""
    epsilon: float = 0.1
    """share of random actions when the agent collects (exploration)"""
    collect_envs: int = 4
    """real envs stepped side by side while collecting"""
    model: Annotated[ModelOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=ModelOptions)
    """the world model to build, as `dreamworld train` takes it (--preset, --termination, ...)"""
    retrain_tokenizer: bool = True
    """later iterations train the tokenizer further too (else only the termination model and the dynamics)"""
    final_episodes: int = 20
    """real episodes played by the final agent (with the game's own time limit) when the loop ends"""
    seed: int = 0
    """seed of collection and scoring"""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(minutes=3.0))
    """world-model training per iteration (continued from the previous iteration's weights)"""
    agent: AgentConfig = field(default_factory=lambda: AgentConfig(steps=100_000, final_episodes=0))
    """agent training per iteration (continued from the previous iteration's policy)"""


def read_state(out: Path) -> dict:
    """The loop's state in `out`, or a fresh one."""
    path = out / STATE
    if not path.exists():
        return {"iteration": 0, "stage": "collect", "real_steps": 0, "model_rewound": 0, "history": [],
                "data": str(out / "data"), "world_model": str(out / "world_model"), "agent": str(out / "agent")}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is damaged ({e}): remove it to start the loop again") from None


def _advance(out: Path, state: dict, stage: str, **updates) -> None:
    """Record that the loop moves on to `stage` (atomically)."""
    state.update(stage=stage, **updates)
    write_json(out / STATE, state)


def _train_world_model(out: Path, state: dict, cfg: LoopConfig, wandb: str) -> None:
    """Train the world model: from scratch in the first iteration, then further from its weights."""
    run = Path(state["world_model"])
    if run.exists() and not (run / ckpt.TRAIN_STATE).exists():
        shutil.rmtree(run)  # killed before the first checkpoint was complete: start it again
    if not run.exists():
        train(state["data"], str(run), cfg.model.config(), cfg.train, wandb=wandb)
        return
    train_state = ckpt.load_train_state(run)
    if train_state["phase"] == "done" and state["model_rewound"] < state["iteration"]:
        # the previous iteration's training ended: give the run a new budget from its current weights
        # without the tokenizer, from the termination model on (the new data hold new endings)
        rewound = {"phase": "tokenizer" if cfg.retrain_tokenizer else "termination",
                   "global_step": train_state["global_step"]}
        rewound |= {k: train_state[k] for k in ("generator", "wandb_id") if k in train_state}
        ckpt.save_train_state(run, rewound)
        state["model_rewound"] = state["iteration"]
        write_json(out / STATE, state)
    if ckpt.load_train_state(run)["phase"] != "done":
        train(state["data"], str(run), cfg.model.config(), cfg.train, resume=True, wandb=wandb)


def loop(env_id: str, out: str, cfg: LoopConfig, wandb: str = "offline", progress: bool = True) -> dict:
    """Run (or resume) the loop in `out` until `cfg.real_steps` real steps are collected and the last agent is
    trained; returns the final state (with the history of real and imagined returns per iteration)."""
    cfg.model.config()  # bad model options fail here, before anything is collected
    if cfg.real_steps < 1 or cfg.steps_per_iteration < 1:
        raise ValueError(f"--real-steps and --steps-per-iteration must be >= 1, got {cfg.real_steps} and "
                         f"{cfg.steps_per_iteration}")
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(out_dir)
    if state.get("env_id", env_id) != env_id:
        raise ValueError(f"{out} holds a loop over {state['env_id']}, not {env_id}: pass another --out")
    state["env_id"] = env_id
    run = Path(state["world_model"])
    if (run / ckpt.CONFIG).is_file():
        differs = cfg.model.differences(ckpt.read_config(run)[0])
        if differs:
            raise ValueError(f"{run} holds a world model built with {', '.join(differs)}: run the loop with the "
                             "model options it started with, or pass another --out")
    iterations = math.ceil(cfg.real_steps / cfg.steps_per_iteration)
    agent_dir = Path(state["agent"])
    while state["iteration"] < iterations:
        i = state["iteration"]
        if state["stage"] == "collect":
            target = min(cfg.real_steps, (i + 1) * cfg.steps_per_iteration)
            has_agent = (agent_dir / "config.json").exists()
            if has_agent:
                from dreamworld.agents import load

                device = cfg.agent.device  # the agent and the tokenizer that encodes its frames act on its device
                agent = load(agent_dir, device)
                model = ckpt.load(state["world_model"], device) if agent.obs_type == "latent" else None
                policy = frame_policy(agent, model)
            else:
                policy = cfg.first_policy
            result = collect(env_id, state["data"], target, policy=policy, seed=cfg.seed + 1000 * i,
                             num_envs=cfg.collect_envs, progress=progress, epsilon=cfg.epsilon if has_agent else 0.0)
            _advance(out_dir, state, "world_model", real_steps=result.steps_total)
        if state["stage"] == "world_model":
            _train_world_model(out_dir, state, cfg, wandb)
            _advance(out_dir, state, "agent")
        if state["stage"] == "agent":
            init = str(agent_dir) if (agent_dir / "config.json").exists() else None
            offset = state["history"][-1]["agent_steps"] if state["history"] else 0
            summary = train_agent(state["world_model"], str(agent_dir), cfg.agent, init=init, wandb=wandb,
                                  wandb_id=state.get("agent_wandb_id"), step_offset=offset, progress=progress)
            record = {"iteration": i, "real_steps": state["real_steps"], "agent_steps": offset + summary["steps"]}
            record |= {k.removeprefix("agent/"): v for k, v in summary.items() if k.startswith("agent/")}
            state["history"].append(record)
            _advance(out_dir, state, "collect", iteration=i + 1, agent_wandb_id=summary["wandb_id"])
    if cfg.final_episodes and "final" not in state:
        from dreamworld.agents import evaluate, load

        policy = load(agent_dir, cfg.agent.device)
        model = ckpt.load(state["world_model"], cfg.agent.device) if policy.obs_type == "latent" else None
        envs = real_envs(env_id, cfg.final_episodes, policy.obs_type, model=model)
        result = evaluate(policy, envs, seed=cfg.seed + 50_000)
        envs.close()
        state["final"] = {"real_return": result.mean_return, "real_return_std": float(np.std(result.returns)),
                          "real_length": result.mean_length, "episodes": cfg.final_episodes}
        write_json(out_dir / STATE, state)
    return state
