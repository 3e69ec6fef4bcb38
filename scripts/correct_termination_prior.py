"""Give a world's termination CNN the prior correction that `dreamworld train` now applies at the end of the
termination phase (`TerminationNet.correct_prior`): its batches over-represent endings, so its logits overstate
the odds of an ending by `TransitionSampler.prior_shift()`, worked out here from the world's training split. Only
the CNN's output bias changes; every other weight in the file stays bit-identical.

    python scripts/correct_termination_prior.py --world dreamworld/worlds/cave --data data/bar_cave

The shift is recorded in the weights file's metadata, written atomically with the bias, and then in config.json
(`termination.prior_shift`). A world that has one is refused; one stopped between the two writes gets its
config.json completed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from safetensors import safe_open

from dreamworld import checkpoint as ckpt
from dreamworld.data import load_steps, split_episodes
from dreamworld.envs import EpisodeDataset
from dreamworld.termination import TransitionSampler
from dreamworld.train import TrainConfig

BIAS = "termination.end_head.bias"
SHIFT_KEY = "termination_prior_shift"


@dataclass
class CorrectPriorArgs:
    """Correct the termination prior of a trained or shipped world."""

    world: str
    """a world-model folder (config.json, model.safetensors), such as dreamworld/worlds/NAME"""
    data: str
    """the dataset it was trained on (config.json names it under info.data)"""


def main(args: CorrectPriorArgs) -> float:
    """Apply the correction; returns the shift (log-odds)."""
    world, cfg = Path(args.world), TrainConfig()
    config = json.loads((world / ckpt.CONFIG).read_text())
    termination = config["config"].get("termination")
    if not termination:
        raise SystemExit(f"{world} reads terminations with the dynamics' end head: it has no termination CNN")
    if termination.get("prior_shift"):
        raise SystemExit(f"{world} was corrected already (prior_shift {termination['prior_shift']:.3f})")
    with safe_open(world / ckpt.WEIGHTS, "pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    if SHIFT_KEY in metadata:  # the bias was lowered, the config not yet written: finish
        shift = float(metadata[SHIFT_KEY])
    else:
        ds = EpisodeDataset(args.data)
        steps = load_steps(ds, split_episodes(ds, cfg.holdout)[0])
        sampler = TransitionSampler(torch.from_numpy(steps.frames), steps.ends, steps.valid, cfg.end_share,
                                    torch.Generator(), near=cfg.termination_near)
        shift = sampler.prior_shift()
        bias = tensors[BIAS]
        tensors[BIAS] = (bias.float() - shift).to(bias.dtype)
        ckpt.write_safetensors(world / ckpt.WEIGHTS, tensors, metadata | {SHIFT_KEY: repr(shift)})
        print(f"{world}: termination logits lowered by {shift:.3f} ({len(sampler.end_steps)} endings in "
              f"{len(sampler.steps)} training steps)")
    termination["prior_shift"] = shift
    ckpt.write_json(world / ckpt.CONFIG, config)
    return shift


if __name__ == "__main__":
    main(tyro.cli(CorrectPriorArgs))
