"""Give a shipped world's termination CNN the prior correction that `dreamworld train` now applies at the end of the
termination phase (`TerminationNet.correct_prior`): its batches over-represent endings, so its logits overstate
the odds of an ending by `TransitionSampler.prior_shift()`, worked out here from the world's training split. Only
the CNN's output bias changes; every other weight in the file stays bit-identical.

    python scripts/correct_termination_prior.py --world dreamworld/worlds/cave --data data/bar_cave

The world's metrics.json records the shift, and a world that has one is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from safetensors import safe_open
from safetensors.torch import save_file

from dreamworld import checkpoint as ckpt
from dreamworld.data import load_steps, split_episodes
from dreamworld.envs import EpisodeDataset
from dreamworld.termination import TransitionSampler
from dreamworld.train import TrainConfig

BIAS = "termination.end_head.bias"


@dataclass
class CorrectPriorArgs:
    """Correct the termination prior of a shipped world."""

    world: str
    """a world folder (dreamworld/worlds/NAME: model.safetensors, metrics.json)"""
    data: str
    """the dataset the world was trained on (its metrics.json names it under training.world_model_info.data)"""


def main(args: CorrectPriorArgs) -> float:
    """Apply the correction; returns the shift (log-odds)."""
    world, cfg = Path(args.world), TrainConfig()
    metrics_path = world / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    if "termination_prior_shift" in metrics:
        raise SystemExit(f"{world} was corrected already (shift {metrics['termination_prior_shift']:.3f})")
    if ckpt.load(world).termination is None:
        raise SystemExit(f"{world} reads terminations with the dynamics' end head: it has no termination CNN")
    ds = EpisodeDataset(args.data)
    train_eps, _ = split_episodes(ds, cfg.holdout)
    steps = load_steps(ds, train_eps)
    sampler = TransitionSampler(torch.from_numpy(steps.frames), steps.ends, steps.valid, cfg.end_share,
                                torch.Generator(), near=cfg.termination_near)
    shift = sampler.prior_shift()
    path = world / ckpt.WEIGHTS
    with safe_open(path, "pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    bias = tensors[BIAS]
    tensors[BIAS] = (bias.float() - shift).to(bias.dtype)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, tmp, metadata=metadata)
    tmp.replace(path)
    metrics["termination_prior_shift"] = shift
    metrics_path.write_text(json.dumps(metrics, indent=1))
    print(f"{world}: termination logits lowered by {shift:.3f} ({len(sampler.end_steps)} endings in "
          f"{len(sampler.steps)} training steps)")
    return shift


if __name__ == "__main__":
    main(tyro.cli(CorrectPriorArgs))
