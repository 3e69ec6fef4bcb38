"""Data-parallel training: `torchrun --nproc_per_node=2 -m dreamworld train` on the CPU (gloo) ends with identical
weights on both ranks, a falling loss, one checkpoint written by rank 0 and a different sampler on each rank."""

import os
import re
import socket
import subprocess
import sys

import torch

from dreamworld.checkpoint import load
from dreamworld.envs import collect
from dreamworld.io import read_safetensors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loss(stdout: str, phase: str, which: str) -> float:
    match = re.search(rf"{phase} {which} loss\s*│\s*([0-9.]+)", stdout)
    assert match, f"no '{phase} {which} loss' in:\n{stdout}"
    return float(match.group(1))


KEEP_RANKS = """
import os, sys
from pathlib import Path

import dreamworld.train.trainer as trainer
from dreamworld.cli.main import main
from dreamworld.io import write_safetensors

models = []


class Kept(trainer.WorldModel):  # the model each rank builds, kept to write its final weights
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        models.append(self)


trainer.WorldModel = Kept
main(sys.argv[1:])
out = Path(sys.argv[sys.argv.index("--out") + 1])
write_safetensors(out / f"rank_{os.environ['RANK']}.safetensors", models[0].state_dict())
"""
"""Run as each rank by torchrun: `dreamworld train`, then every rank writes the weights it ended with to
OUT/rank_K.safetensors."""


def test_two_cpu_ranks_train_one_model(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    collect("Catch", data, 1200, policy="mixed", seed=0, num_envs=3, progress=False)
    script = tmp_path / "train_and_keep_ranks.py"
    script.write_text(KEEP_RANKS)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(script), "train", "--data", str(data), "--out", str(run),
           "--wandb", "disabled", "--steps", "40", "--tokenizer.batch-size", "4", "--dynamics.batch-size", "2",
           "--dynamics.sequence-frames", "8", "--tokenizer.share", "0.32", "--outcome.share", "0.08", "--warmup-steps",
           "3", "--log-every", "4", "--holdout", "0.34", "--eval-samples", "4", "--tokenizer.canvas-frames", "64"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("dreamworld train") == 1  # only rank 0 reports
    rank0, rank1 = (read_safetensors(run / f"rank_{k}.safetensors") for k in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the ranks"
    model = load(run)  # rank 0's checkpoint holds the same weights
    assert all(torch.equal(v, rank0[k]) for k, v in model.state_dict().items())
    for phase in ("tokenizer", "dynamics"):
        assert _loss(out.stdout, phase, "final") < _loss(out.stdout, phase, "first")
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["phase"] == "done" and state["global_step"] == 40
    assert len(state["generators"]) == 2 and not torch.equal(*state["generators"])  # each rank its own windows
