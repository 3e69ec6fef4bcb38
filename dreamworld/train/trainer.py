"""Training a world model from a dataset: the tokenizer first, then (tokens frozen) the termination model on the
tokenizer's drawings of the data (when the model has one, termination.py), then the dynamics, then (transformer
frozen) the reward head again on event-rich batches (outcome.py).

Read top to bottom: `train` loads the data, runs the phases through `run_phase` (one optimisation loop
with NaN guard, periodic atomic checkpoints and logging; the termination and outcome phases are in
optional_phases.py), then scores the model on held-out episodes.
A run directory holds config.json, model.safetensors, starts.safetensors and train_state.pt (for --resume).
Under torchrun the module being trained is wrapped in DistributedDataParallel: each rank samples its own
windows, rank 0 decides when to stop, save and evaluate, and only rank 0 logs and writes (see distributed.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dreamworld import checkpoint as ckpt
from dreamworld.envs import EpisodeDataset, env_render_fps
from dreamworld.evaluate.fidelity import log_eval, log_reconstructions
from dreamworld.model.precision import flush_denormals, resolve
from dreamworld.model.world_model import WorldModel, WorldModelConfig
from dreamworld.tracking import Tracker
from dreamworld.train.compiling import compiled, should_compile
from dreamworld.train.config import TrainConfig
from dreamworld.train.data import Steps, WindowSampler, frames_with_endings, load_steps, near_miss_codes, split_episodes
from dreamworld.train.distributed import Distributed
from dreamworld.train.optional_phases import outcome_phase, termination_phase
from dreamworld.train.phases import RunClock, check_shares, phase_budget, run_phase
from dreamworld.train.termination import drawings


def _reward_values(ds: EpisodeDataset, episodes: list[int]) -> list[float]:
    """Mean negative and mean positive reward in the data (what a predicted reward class emits)."""
    rewards = np.concatenate([ds.episode(i)["rewards"] for i in episodes])
    neg, pos = rewards[rewards < 0], rewards[rewards > 0]
    return [float(neg.mean()) if len(neg) else -1.0, 0.0, float(pos.mean()) if len(pos) else 1.0]


def tokenizer_batches(steps: Steps, cfg: TrainConfig, generator: torch.Generator
                      ) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """A function giving tokenizer batches from `steps`: (frames, the frames before them), uint8 (B, H, W, 3) each,
    `cfg.tokenizer.end_share` of them frames an episode ended on."""
    frames = torch.from_numpy(steps.frames)  # (F, H, W, 3)
    has_prev = torch.nonzero(steps.episode_start != torch.arange(len(frames))).squeeze(1)  # frames after a step
    terminal = torch.nonzero(steps.ends).squeeze(1) + 1  # (E,) frames an episode ended on

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = frames_with_endings(has_prev, terminal, cfg.tokenizer.batch_size, cfg.tokenizer.end_share,
                                  generator)  # (B,)
        return frames[idx], frames[idx - 1]

    return batch


def fit_to_dataset(model_cfg: WorldModelConfig, ds: EpisodeDataset, train_eps: list[int]) -> None:
    """Set what `model_cfg` takes from the data: env id, frame shape, action space, fps, reward values."""
    model_cfg.env_id, model_cfg.obs_shape = ds.env_id, list(ds.obs_shape)
    model_cfg.action_space = ds.manifest["action_space"]
    model_cfg.render_fps = int(ds.manifest.get("render_fps") or env_render_fps(ds.env_id))
    model_cfg.reward_values = _reward_values(ds, train_eps)


def dynamics_loss(model: WorldModel, batch: dict, cfg: TrainConfig,
                  forward: Callable | None = None) -> tuple[torch.Tensor, dict]:
    """Cross-entropy on every FSQ digit of the next frame's tokens, weighted reward-sign CE and (with an end head)
    weighted termination BCE (events outweigh the common uneventful steps). `forward`: the dynamics' forward pass
    to use (a compiled one, `compiling.compiled`); default `model.dynamics`."""
    tokens, mask = batch["tokens"], batch["mask"].float()  # (B, T+1, N), (B, T)
    forward = model.dynamics if forward is None else forward
    inputs = batch.get("inputs", tokens[:, :-1])  # (B, T, N): the context, maybe with near-miss codes
    digit_logits, reward_logits, end_logits = forward(inputs, batch["actions"], tokens[:, 1:])
    # end_logits: None when the model reads terminations off frames (trained in their own phase)
    targets = model.dynamics.digits(tokens[:, 1:])  # (B, T, N, len(levels))
    token_loss = 0.0
    correct = torch.ones(targets.shape[:-1], dtype=torch.bool, device=targets.device)  # (B, T, N)
    for d, logits in enumerate(digit_logits.split(model.dynamics.levels, dim=-1)):  # (B, T, N, L_d)
        ce = F.cross_entropy(logits.flatten(0, 2), targets[..., d].flatten(), reduction="none")  # (B*T*N,)
        token_loss = token_loss + (ce.view(mask.shape + (-1,)).mean(-1) * mask).sum()
        correct &= logits.argmax(-1) == targets[..., d]
    denom = mask.sum().clamp_min(1)
    token_loss = token_loss / denom
    token_acc = (correct.float().mean(-1) * mask).sum() / denom
    reward_class = (torch.sign(batch["rewards"]) + 1).long()  # (B, T)
    reward_ce = F.cross_entropy(reward_logits.flatten(0, 1), reward_class.flatten(), reduction="none")  # (B*T,)
    event = (reward_class != 1).float()  # (B, T)
    reward_loss = (reward_ce.view_as(mask) * (1 + (cfg.reward_event_weight - 1) * event) * mask).sum() / denom
    total = token_loss + cfg.reward_weight * reward_loss
    metrics = {"token_loss": token_loss.item(), "token_accuracy": token_acc.item(), "reward_loss": reward_loss.item()}
    if end_logits is not None:
        ends = batch["ends"].float()
        end_loss = (F.binary_cross_entropy_with_logits(end_logits, ends, reduction="none")
                    * (1 + (cfg.end_weight - 1) * ends) * mask).sum() / denom
        total = total + end_loss
        metrics["end_loss"] = end_loss.item()
    return total, metrics | {"loss": total.item()}


@torch.no_grad()
def encode_frames(model: WorldModel, frames: np.ndarray, batch: int = 256, progress: bool = True) -> torch.Tensor:
    """uint8 frames (F, H, W, 3) -> tokens (F, N) on the CPU."""
    model.eval()
    return torch.cat([model.encode(torch.from_numpy(frames[i : i + batch])).cpu()
                      for i in tqdm(range(0, len(frames), batch), desc="encoding frames", leave=False,
                                    disable=not progress)])


def _start(ds: EpisodeDataset, data: str, out: Path, model_cfg: WorldModelConfig, cfg: TrainConfig, resume: bool,
           device: torch.device, train_eps: list[int]) -> tuple[WorldModel, dict]:
    """The model and the resume state: the run in `out` when resuming, else a new model fitted to the data."""
    if resume:
        state = ckpt.load_train_state(out)
        model = ckpt.load(out, device)
        if model.cfg.env_id != ds.env_id:
            raise ValueError(f"{out} was trained on {model.cfg.env_id}, but {data} holds {ds.env_id}")
        return model, state
    if (out / ckpt.CONFIG).exists():
        raise ValueError(f"{out} already holds a checkpoint: pass --resume to continue it, or another --out")
    fit_to_dataset(model_cfg, ds, train_eps)
    return WorldModel(model_cfg).to(device), {"phase": "tokenizer", "global_step": 0}


def _sampler_generator(cfg: TrainConfig, state: dict, dist: Distributed, resume: bool) -> torch.Generator:
    """The generator every sampler of this rank draws from: as saved in `state`, or seeded anew."""
    generator = torch.Generator().manual_seed(cfg.seed)
    if len(state.get("generators", ())) == dist.world_size:
        generator.set_state(state["generators"][dist.rank])
    elif "generator" in state and dist.is_main:
        generator.set_state(state["generator"])
    elif resume:  # a rank whose sampler state was not saved: fresh windows, not those of the run's start
        generator.manual_seed(cfg.seed + dist.rank + 1_000_003 * state["global_step"])
    return generator


def _precisions(cfg: TrainConfig, model: WorldModel, device: torch.device) -> str:
    """Each network's training precision, as the summary reports it."""
    return ", ".join(f"{net} {resolve(p, device)}" for net, p, present in (
        ("tokenizer", cfg.tokenizer.precision, True), ("dynamics", cfg.dynamics.precision, True),
        ("termination", cfg.termination.precision, model.termination is not None)) if present)


@dataclass
class _Run:
    """One `train` call's shared state: the data, the model, the resume state and where it is written and logged."""

    ds: EpisodeDataset
    data: str
    out: Path
    cfg: TrainConfig
    dist: Distributed
    model: WorldModel
    state: dict
    steps: Steps
    generator: torch.Generator
    tracker: Tracker
    clock: RunClock
    run_clock: RunClock | None
    """what the phases end on; None for a run saved before the clock existed (it keeps the shares' budgets)"""

    def save(self, phase_state: dict) -> None:
        """Rank 0 writes the model and the resume state (with every rank's sampler state and the run's clock); all
        ranks call it."""
        generators = self.dist.gather(self.generator.get_state())
        if not self.dist.is_main:
            return
        ckpt.save_model(self.out, self.model, {"phase": phase_state["phase"], "data": str(self.data),
                                               "env_id": self.ds.env_id})
        ranks = {"generators": generators} if self.dist.active else {}
        ckpt.save_train_state(self.out, {**phase_state, "generator": self.generator.get_state(),
                                         "wandb_id": self.tracker.id,
                                         **({"run_elapsed": self.clock.elapsed()} if self.run_clock else {}),
                                         **ranks})

    def next_phase(self, phase: str) -> None:
        """Move on to `phase` and save."""
        self.state = {"phase": phase, "global_step": self.state["global_step"]}
        self.save(self.state)


def _begin(run: _Run, train_eps: list[int]) -> None:
    """A new run: fit the tokenizer's canvas, give each rank its own batches, write the first checkpoint and the
    start contexts."""
    cfg, dist, model = run.cfg, run.dist, run.model
    if cfg.tokenizer.canvas_frames:
        order = torch.randperm(len(run.steps.frames), generator=run.generator)  # (F,)
        sample = order[: cfg.tokenizer.canvas_frames].sort().values
        model.tokenizer.fit_canvas(run.steps.frames[sample.numpy()])
    if dist.active:
        run.generator.manual_seed(cfg.seed + dist.rank)  # each rank samples its own batches from here on
    run.save(run.state)
    if dist.is_main:
        ckpt.save_starts(run.out, run.ds, train_eps, model.cfg.dynamics.context_frames)


def _tokenizer_phase(run: _Run) -> dict:
    """Train the tokenizer; move on to the termination phase and log reconstructions."""
    cfg, dist, model = run.cfg, run.dist, run.model
    batch = tokenizer_batches(run.steps, cfg, run.generator)
    net = dist.wrap(model.tokenizer, model.tokenizer.loss)

    def tokenizer_loss():
        return net(*(f.to(dist.device) for f in batch()))

    summary = run_phase("tokenizer", model, list(model.tokenizer.parameters()), tokenizer_loss, cfg.tokenizer.lr,
                        cfg, run.state, run.save, run.tracker, dist=dist, precision=cfg.tokenizer.precision,
                        clock=run.run_clock)
    run.next_phase("termination")
    if dist.is_main:
        log_reconstructions(model, run.steps, run.tracker, run.state["global_step"])
    return summary


def _dynamics_phase(run: _Run, tokens: torch.Tensor, held_eps: list[int]) -> dict:
    """Train the dynamics on windows of the frames' `tokens`, scoring held-out episodes on the way; move on to
    the outcome phase (or the end)."""
    cfg, dist, model = run.cfg, run.dist, run.model
    sampler = WindowSampler(run.steps, tokens, sequence_frames(model, cfg), cfg.end_share, cfg.seed)
    sampler.generator = run.generator
    compile_step = should_compile(cfg.dynamics.compile, dist.device, *phase_budget(cfg, "dynamics", model))
    forward = compiled(model.dynamics) if compile_step else model.dynamics  # the same weights either way
    net = dist.wrap(model.dynamics, lambda batch: dynamics_loss(model, batch, cfg, forward))

    def loss():
        batch = sampler.sample(cfg.dynamics.batch_size)
        if cfg.dynamics.context_noise > 0:
            batch["inputs"] = near_miss_codes(batch["tokens"][:, :-1], model.dynamics.levels,
                                              cfg.dynamics.context_noise, run.generator)  # (B, T, N)
        return net({k: v.to(dist.device) for k, v in batch.items()})

    def on_eval(step: int) -> None:
        if held_eps:
            log_eval(model, run.ds, held_eps, run.tracker, step, samples=max(1, cfg.eval_samples // 2))

    peak_lr = cfg.dynamics.peak_lr(model.cfg.dynamics.d_model)
    summary = run_phase("dynamics", model, list(model.dynamics.parameters()), loss, peak_lr, cfg, run.state,
                        run.save, run.tracker, on_eval, dist=dist, precision=cfg.dynamics.precision,
                        clock=run.run_clock, warmup_share=cfg.dynamics.warmup_share)
    frames = summary["steps"] * cfg.dynamics.batch_size * dist.world_size * sequence_frames(model, cfg)
    summary["frames_per_s"] = frames / summary["seconds"]
    summary["compiled"] = compile_step
    run.next_phase("outcome" if cfg.outcome.share > 0 else "done")
    return summary


def _phases(run: _Run, held_eps: list[int]) -> dict:
    """Run the phases from the one the state is in to the end; their summaries by name."""
    model, summary = run.model, {}
    args = (run.cfg, run.generator)
    if run.state["phase"] == "tokenizer":
        summary["tokenizer"] = _tokenizer_phase(run)
    if run.state["phase"] == "termination" and model.termination is None:
        run.state["phase"] = "dynamics"  # the dynamics' end head reads terminations: no phase of its own
    if run.state["phase"] == "outcome" and run.cfg.outcome.share <= 0:  # resumed with the phase switched off
        run.next_phase("done")
    if run.state["phase"] != "done":
        model.tokenizer.requires_grad_(False)
        tokens = encode_frames(model, run.steps.frames, progress=run.dist.is_main)
    if run.state["phase"] == "termination":
        fresh = drawings(model.tokenizer, tokens)  # (F, H, W, 3) the tokenizer's drawings of the frames
        summary["termination"] = termination_phase(model, run.steps, fresh, *args, run.state, run.save, run.tracker,
                                                   run.dist, run.run_clock)
        run.next_phase("dynamics")  # saved with the corrected prior
    if run.state["phase"] == "dynamics":
        summary["dynamics"] = _dynamics_phase(run, tokens, held_eps)
    if run.state["phase"] == "outcome":
        summary["outcome"] = outcome_phase(model, run.steps, tokens, *args, run.state, run.save, run.tracker,
                                           run.dist, run.run_clock)
        run.next_phase("done")
    return summary


def train(data: str, out: str, model_cfg: WorldModelConfig, cfg: TrainConfig, resume: bool = False,
          wandb: str = "offline") -> dict:
    """Train a world model on the dataset `data` into the run directory `out`; returns the summary (rank 0's
    holds the held-out metrics). Under torchrun every rank runs this; they train one model together."""
    flush_denormals()  # on the CPU, gradients near zero otherwise slow steps down up to 24x
    ds, out = EpisodeDataset(data), Path(out)
    dist = Distributed(cfg.device)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    train_eps, held_eps = split_episodes(ds, cfg.holdout)
    model, state = _start(ds, data, out, model_cfg, cfg, resume, dist.device, train_eps)
    check_shares(cfg, model)
    dist.barrier()  # every rank has read the run directory before rank 0 writes to it
    if dist.active:
        torch.manual_seed(cfg.seed + dist.rank)
    tracker = Tracker(wandb, out, {"model": model.cfg.to_dict(), "train": asdict(cfg), "data": str(data),
                                   "world_size": dist.world_size},
                      job="train", rank=dist.rank, resume_id=state.get("wandb_id"))
    state["wandb_id"] = tracker.id
    steps = load_steps(ds, train_eps, progress=dist.is_main)
    generator = _sampler_generator(cfg, state, dist, resume)
    summary: dict = {"train_episodes": len(train_eps), "heldout_episodes": len(held_eps),
                     "train_frames": len(steps.frames), "precision": _precisions(cfg, model, dist.device)}
    clock = RunClock(time.perf_counter() - float(state.get("run_elapsed", 0.0)))
    run = _Run(ds, data, out, cfg, dist, model, state, steps, generator, tracker, clock,
               run_clock=clock if not resume or "run_elapsed" in state else None)
    if not resume:
        _begin(run, train_eps)
    summary |= _phases(run, held_eps)
    summary["train_seconds"] = clock.elapsed()
    if held_eps and dist.is_main:
        summary["eval"] = log_eval(model, ds, held_eps, tracker, run.state["global_step"], samples=cfg.eval_samples)
    tracker.artifact(f"world-model-{out.name}", "model", out, [ckpt.CONFIG, ckpt.WEIGHTS, ckpt.STARTS])
    tracker.summary({k: v for k, v in summary.items() if isinstance(v, int | float)})
    tracker.finish()
    dist.barrier()  # the other ranks wait for rank 0's evaluation
    dist.close()
    return summary


def sequence_frames(model: WorldModel, cfg: TrainConfig) -> int:
    """Steps per dynamics training sequence: cfg.dynamics.sequence_frames, or the model's context."""
    return cfg.dynamics.sequence_frames or model.cfg.dynamics.context_frames
