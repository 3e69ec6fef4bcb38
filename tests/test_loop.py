"""`dreamworld loop` at toy scale: collect -> world model -> agent iterations within the real-step cap, and
resume after SIGKILL without collecting or scoring an iteration twice."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dreamworld import checkpoint as ckpt
from dreamworld.agents import load
from dreamworld.checkpoint import load_train_state
from dreamworld.envs import EpisodeDataset

TOY = ["--wandb", "disabled", "--threads", "1", "--collect-envs", "2", "--train.steps", "4",
       "--train.dynamics.batch-size", "2", "--train.tokenizer.batch-size", "4", "--train.holdout", "0",
       "--agent.steps", "32", "--agent.num-envs", "4", "--agent.actor-critic.horizon", "8", "--agent.eval-every", "1",
       "--agent.eval-episodes", "2", "--agent.eval-max-steps", "5", "--agent.max-episode-steps", "20",
       "--agent.no-video"]


def _loop(out, real_steps, per_iteration, *extra):
    return [sys.executable, "-m", "dreamworld", "loop", "--env", "Bricks", "--out", str(out), "--real-steps",
            str(real_steps), "--steps-per-iteration", str(per_iteration), *TOY, *extra]


def _check_finished(out, real_steps, iterations):
    state = json.loads((out / "loop.json").read_text())
    assert state["iteration"] == iterations and state["real_steps"] == real_steps
    assert [h["iteration"] for h in state["history"]] == list(range(iterations))
    assert [h["real_steps"] for h in state["history"]] == [min(real_steps, 80 * (i + 1)) for i in range(iterations)]
    assert sum(e.steps for e in EpisodeDataset(out / "data").episodes) == real_steps  # the cap holds
    assert load_train_state(out / "world_model")["phase"] == "done"
    policy = load(out / "agent")
    assert policy.obs_type == "latent" and policy.env_id == "dreamworld/Bricks-v0"
    return state


def test_loop_end_to_end(tmp_path):
    out = tmp_path / "loop"
    done = subprocess.run(_loop(out, 160, 80, "--final-episodes", "1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dreamworld loop on Bricks" in done.stdout and "final agent" in done.stdout
    state = _check_finished(out, 160, 2)
    assert state["final"]["episodes"] == 1 and state["final"]["real_length"] > 0
    assert state["model_rewound"] == 1  # the second iteration trained the same world model further
    # 4 steps per iteration, shared out 1 / 1 / 3 / 1 (rounded, at least one each) over tokenizer, termination
    # model, dynamics and outcome heads
    assert load_train_state(out / "world_model")["global_step"] == 12
    again = subprocess.run(_loop(out, 160, 80, "--final-episodes", "1"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads((out / "loop.json").read_text()) == state  # nothing left to do


def test_loop_resumes_after_sigkill(tmp_path):
    """Killed mid-iteration, the loop continues; it takes train's model options (here --termination tokens)."""
    out = tmp_path / "loop"
    cmd = _loop(out, 240, 80, "--final-episodes", "0", "--termination", "tokens")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, killed_in = time.time() + 120, None
    while time.time() < deadline and proc.poll() is None:
        try:
            state = json.loads((out / "loop.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = {}
        if state.get("iteration") == 1 and state.get("stage") in ("world_model", "agent"):
            os.kill(proc.pid, signal.SIGKILL)
            killed_in = state["stage"]
            break
        time.sleep(0.02)
    proc.wait()
    assert killed_in, "the loop ended before it could be killed"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_finished(out, 240, 3)
    assert ckpt.load(out / "world_model").termination is None  # the dynamics' end head reads the endings


def test_loop_refuses_model_options_its_world_model_was_not_built_with(tmp_path):
    """Run again with other model options, the loop stops before it collects, naming what differs."""
    from test_play import make_run

    from dreamworld.jobs.loop import LoopConfig, loop
    from dreamworld.model.presets import ModelOptions

    out = tmp_path / "loop"
    make_run(out / "world_model")  # a toy model: a termination CNN
    with pytest.raises(ValueError, match=r"termination 'frames' \(asked: 'tokens'\).*run the loop with the model"):
        loop("Bricks", str(out), LoopConfig(model=ModelOptions(termination="tokens")), wandb="disabled",
             progress=False)
    assert not (out / "data").exists()
