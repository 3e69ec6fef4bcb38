"""Recreate the worlds shipped in dreamworld/worlds/: for each built-in game, collect 15k random + 15k scripted real
steps, train the tiny preset for 14 minutes (the issue's 15-minute bar on 2 cores) with `dreamworld train`'s code,
evaluate it, train an actor-critic in its dream, export both for shipping (float16 when the fidelity metrics do
not suffer and the world fits in 10 MB, else int8) and write the world's metrics.json and a real | dream GIF.

    python scripts/make_worlds.py                        # all three games, about 80 minutes on a 2-core CPU
    python scripts/make_worlds.py --games Catch --agent-minutes 5

Every stage can be interrupted: running the same command again continues (datasets, world models and agents in
--work are reused or resumed).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro

import dreamworld
from dreamworld import checkpoint as ckpt
from dreamworld import worlds
from dreamworld.agents import evaluate
from dreamworld.agents import load as load_agent
from dreamworld.console import print_table
from dreamworld.dream.agent_envs import real_envs
from dreamworld.evaluate.fidelity import fidelity, write_report
from dreamworld.io import write_json
from dreamworld.jobs.demo import collect_mixed, train_or_resume
from dreamworld.jobs.train_agent import AgentConfig, train_agent
from dreamworld.model.presets import ModelOptions
from dreamworld.train.config import TrainConfig
from dreamworld.train.data import split_episodes


@dataclass
class MakeWorldsArgs:
    """Train, evaluate and export the shipped worlds."""

    games: tuple[str, ...] = ("Bricks", "Cave", "Catch")
    """built-in games to make worlds of (each ships as dreamworld/worlds/<game in lower case>)"""
    random_steps: int = 15_000
    """real steps of random play per game"""
    scripted_steps: int = 15_000
    """real steps of scripted play per game"""
    minutes: float | None = 14.0
    """world-model training budget per game, tiny preset (the issue's 15-minute bar, with room for encoding)"""
    steps: int | None = None
    """world-model optimisation steps per game instead of --minutes (reproducible, not time-bound)"""
    refiner_games: tuple[str, ...] = ("Cave",)
    """games whose world gets a refiner (dreamworld train --refiner): Cave's speckled walls scroll, and no token
    grid holds them frame by frame"""
    refiner_tokenizer_share: float = 0.3
    """tokenizer share of the refiner games (the refiner draws the texture, so the tokenizer can take less)"""
    refiner_share: float = 0.1
    """refiner share of the refiner games"""
    refiner_termination_share: float = 0.06
    """termination-CNN share of the refiner games (it learns their endings within a minute)"""
    moved_endings_games: tuple[str, ...] = ()
    """games whose termination CNN learns on moved and flipped copies of the play area, half of them real frames
    (--termination-shift 8 --termination-flip --termination-real-share 0.5), as Cave's crashes depend on where the
    ship is against the wall, not on the height. It needs ~5,000 CNN steps (F1 0.873 on 240 fresh crashes, on the
    shipped world's drawings; 0.786 after 2,500); a 15-minute Cave run with shares 0.28 / 0.12 / 0.14 gave the CNN
    1,860 and scored worse than without (docs/world_model_log.md), so it is off by default"""
    rewards_frames_games: tuple[str, ...] = ()
    """games whose termination CNN reads the rewards too (dreamworld train --rewards frames; the outcome phase is
    then skipped and its share goes to the dynamics). Off by default: a sampled Catch dream's flickering score
    digits read as catches (docs/world_model_log.md)"""
    tokenizer_share: float = 0.15
    """share of the budget spent on the tokenizer (`dreamworld train`'s default)"""
    agent_minutes: float = 10.0
    """budget of the agent trained in each world's dream"""
    agent_steps: int = 2_000_000
    """cap on the agent's imagined steps (the time budget usually ends it first)"""
    eval_samples: int = 256
    """held-out rollouts scored per world (and again for the exported weights)"""
    dtype: Literal["auto", "float16", "int8", "float32"] = "auto"
    """weights of the shipped world: auto takes float16, or int8 when float16 loses fidelity or exceeds the size cap"""
    tolerance_db: float = 0.1
    """largest PSNR drop (h=1, h=16, reconstruction) the exported weights may cost against float32"""
    work: str = "runs/worlds"
    """where datasets, training runs, agents and reports are kept"""
    out: str = str(worlds.ROOT)
    """where the worlds are exported (the package folder, so they ship in the wheel)"""
    docs: str | None = "docs/worlds"
    """where the real | dream GIF of each world is copied for the README (None: not copied)"""
    wandb: Literal["offline", "online", "disabled"] = "offline"
    """experiment tracking of training and agent runs"""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)"""
    seed: int = 0
    """seed of collection, training and scoring"""


def _headline(metrics: dict) -> dict:
    """The fidelity numbers a world is judged by."""
    return {k: metrics[k] for k in ("psnr", "baseline_psnr", "ssim", "reconstruction_psnr", "reward_f1",
                                    "termination_f1", "rollouts", "horizon", "episodes")}


def _drop(reference: dict, other: dict) -> float:
    """The largest PSNR loss (dB) of `other` against `reference` at h=1, h=16 and in reconstruction."""
    pairs = [(reference["psnr"][h], other["psnr"][h]) for h in ("1", "16") if h in reference["psnr"]]
    pairs.append((reference["reconstruction_psnr"], other["reconstruction_psnr"]))
    return max(a - b for a, b in pairs)


def _agent_return(world: Path, agent: Path, episodes: int, seed: int) -> float:
    """Mean real return of `agent` playing through the tokenizer of the world model in `world`."""
    policy, model = load_agent(agent), ckpt.load(world)
    envs = real_envs(model.cfg.env_id, episodes, policy.obs_type, model=model)
    result = evaluate(policy, envs, seed=seed)
    envs.close()
    return result.mean_return


def make_world(game: str, args: MakeWorldsArgs) -> dict:
    """Every stage for one game; returns what goes into the world's metrics.json."""
    name, work = game.lower(), Path(args.work) / game.lower()
    data, run, agent, report = work / "data", work / "world_model", work / "agent", work / "report"
    ds = collect_mixed(game, data, args.random_steps, args.scripted_steps, seed=args.seed)
    refiner = game in args.refiner_games
    train_cfg = TrainConfig(minutes=None if args.steps else args.minutes, steps=args.steps, seed=args.seed)
    train_cfg.tokenizer_share = args.refiner_tokenizer_share if refiner else args.tokenizer_share
    if refiner:
        train_cfg.refiner_share, train_cfg.termination_share = args.refiner_share, args.refiner_termination_share
    if game in args.moved_endings_games:
        train_cfg.termination_shift, train_cfg.termination_flip, train_cfg.termination_real_share = 8, True, 0.5
    options = ModelOptions(refiner=refiner, rewards="frames" if game in args.rewards_frames_games else "tokens")
    train_or_resume(data, run, train_cfg, args.wandb, options)
    held = split_episodes(ds, train_cfg.holdout)[1]
    model = ckpt.load(run)
    reference, examples = fidelity(model, ds, held, horizon=16, samples=args.eval_samples, seed=args.seed)
    write_report(report / "float32", reference, examples, model.cfg.render_fps)
    agent_info = json.loads((agent / ckpt.CONFIG).read_text())["info"] if (agent / ckpt.CONFIG).is_file() else {}
    if "final_real_return" not in agent_info:  # not trained yet, or interrupted
        agent_cfg = AgentConfig(steps=args.agent_steps, minutes=args.agent_minutes, seed=args.seed)
        agent_info = train_agent(str(run), str(agent), agent_cfg, wandb=args.wandb)
    candidates = ["float16", "int8"] if args.dtype == "auto" else [args.dtype]
    for dtype in candidates:
        world = worlds.export_world(run, Path(args.out) / name, dtype=dtype, agent=agent)
        shipped, examples = fidelity(ckpt.load(world), ds, held, horizon=16, samples=args.eval_samples,
                                     seed=args.seed)
        drop, size = _drop(reference, shipped), worlds.size_bytes(world)
        if drop <= args.tolerance_db and size <= worlds.MAX_BYTES:
            break
        print(f"{name}: {dtype} weights lose {drop:.2f} dB and take {size / 1e6:.1f} MB")
    paths = write_report(report / "shipped", shipped, examples, model.cfg.render_fps)
    if args.docs:
        Path(args.docs).mkdir(parents=True, exist_ok=True)
        shutil.copy(paths["gif"], Path(args.docs) / f"{name}.gif")
    final_episodes = int(agent_info.get("final_episodes", 20))
    metrics = {
        "world": name, "env_id": model.cfg.env_id, "weights": dtype, "size_bytes": worlds.size_bytes(world),
        "fits": size <= worlds.MAX_BYTES, "fidelity_kept": drop <= args.tolerance_db, "psnr_drop_db": drop,
        "fidelity": _headline(shipped), "fidelity_float32": _headline(reference),
        "agent": {"algo": "actor-critic", "obs_type": "latent",
                  "real_return_trained": agent_info.get("final_real_return"),
                  "real_return_shipped": _agent_return(world, world / worlds.AGENT, final_episodes, args.seed),
                  "episodes": final_episodes},
        "data": {"random_steps": args.random_steps, "scripted_steps": args.scripted_steps,
                 "episodes": len(ds), "heldout_episodes": len(held)},
        "training": {"preset": "tiny", "minutes": None if args.steps else args.minutes, "steps": args.steps,
                     "tokenizer_share": train_cfg.tokenizer_share, "refiner": refiner,
                     "termination_share": train_cfg.termination_share,
                     "refiner_share": train_cfg.refiner_share if refiner else None,
                     "moved_endings": game in args.moved_endings_games,
                     "rewards": "frames" if game in args.rewards_frames_games else "tokens",
                     "agent_minutes": args.agent_minutes,
                     "world_model_info": ckpt.read_config(run)[1]},
        "made_with": {"script": "scripts/make_worlds.py", "settings": asdict(args), "dreamworld":
                      dreamworld.__version__, "torch": torch.__version__},
    }
    write_json(world / "metrics.json", metrics)
    return metrics


def main(args: MakeWorldsArgs) -> None:
    """Make every world and print one row per world."""
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for game in args.games:
        m = make_world(game, args)
        fid = m["fidelity"]
        rows[m["world"]] = (f"{m['weights']}, {m['size_bytes'] / 1e6:.1f} MB, PSNR h=1 {fid['psnr']['1']:.2f} "
                            f"(baseline {fid['baseline_psnr']['1']:.2f}), h=16 {fid['psnr']['16']:.2f}, agent "
                            f"{m['agent']['real_return_shipped']:.2f}")
        if not (m["fits"] and m["fidelity_kept"]):
            rows[m["world"]] += f" -- CHECK: {m['psnr_drop_db']:.2f} dB lost, fits in 10 MB: {m['fits']}"
    print_table(f"worlds in {args.out}", rows)


if __name__ == "__main__":
    main(tyro.cli(MakeWorldsArgs))
