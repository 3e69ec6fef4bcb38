"""Training end to end at toy scale: the loss falls, NaN stops training, SIGKILL + --resume, wandb offline,
and collect -> train -> evaluate through the command line."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from toy_models import toy_config

from dreamworld.checkpoint import load
from dreamworld.envs import collect
from dreamworld.train.config import DynamicsPhase, OutcomePhase, TerminationPhase, TokenizerPhase, TrainConfig
from dreamworld.train.phases import TrainingDiverged, adamw, lr_scale
from dreamworld.train.trainer import train


def fast(steps: int, tokenizer: dict | None = None, dynamics: dict | None = None, **others) -> TrainConfig:
    """A short run's TrainConfig: batches of 8, `steps` steps, and the phase settings and others given."""
    return TrainConfig(steps=steps, tokenizer=TokenizerPhase(**{"batch_size": 8} | (tokenizer or {})),
                       dynamics=DynamicsPhase(**{"batch_size": 8} | (dynamics or {})),
                       **{"log_every": 5, "warmup_steps": 5, "holdout": 0.34, "eval_samples": 8} | others)


@pytest.fixture(scope="module")
def catch_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "catch"
    collect("Catch", data, 1500, policy="mixed", seed=0, num_envs=3, progress=False)
    return data


def _toy_cfg(catch_data):
    from dreamworld.envs import EpisodeDataset, space_to_json

    cfg = toy_config(context=3)
    cfg.action_space = space_to_json(EpisodeDataset(catch_data).action_space)
    return cfg


def test_overfitting_a_tiny_dataset(catch_data, tmp_path):
    cfg = _toy_cfg(catch_data)
    cfg.tokenizer.worst_pixels = 0  # the worst-pixels term keeps a toy tokenizer's loss far from zero
    summary = train(str(catch_data), str(tmp_path / "run"), cfg,
                    fast(300, tokenizer={"share": 0.5, "canvas_frames": 0}, dynamics={"lr": 3e-3},
                         termination=TerminationPhase(share=0.1)), wandb="disabled")
    for phase in ("tokenizer", "termination", "dynamics"):
        assert summary[phase]["final_loss"] < 0.5 * summary[phase]["first_loss"], summary[phase]
    model = load(tmp_path / "run")
    assert model.cfg.env_id == "dreamworld/Catch-v0" and model.cfg.render_fps == 30
    assert (tmp_path / "run" / "starts.safetensors").exists()
    metrics = summary["eval"]  # measured: PSNR h=1 23.6 dB, reconstruction 23.4 dB
    assert metrics["psnr"]["1"] > 21  # Catch's flat background colour alone scores 20.6 dB, an untrained model ~7
    assert abs(metrics["psnr"]["1"] - metrics["reconstruction_psnr"]) < 2  # one step ahead, as sharp as the tokenizer
    with pytest.raises(ValueError, match="already holds a checkpoint: pass --resume"):  # never trains over a run
        train(str(catch_data), str(tmp_path / "run"), cfg, fast(300), wandb="disabled")
    assert all(torch.equal(a, b) for a, b in zip(load(tmp_path / "run").state_dict().values(),
                                                  model.state_dict().values(), strict=True))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(catch_data, tmp_path):
    with pytest.raises(TrainingDiverged, match="last good checkpoint is kept"):
        train(str(catch_data), str(tmp_path / "run"), _toy_cfg(catch_data),
              fast(200, tokenizer={"lr": 1e9}, warmup_steps=1), wandb="disabled")
    model = load(tmp_path / "run")  # the checkpoint written before the blow-up
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _train_cmd(data, run, *extra):
    return [sys.executable, "-m", "dreamworld", "train", "--data", str(data), "--out", str(run), "--wandb",
            "disabled", "--tokenizer.batch-size", "4", "--dynamics.batch-size", "4", "--holdout", "0.34",
            "--eval-samples", "4",
            *extra]


def test_sigkill_then_resume_continues(catch_data, tmp_path):
    run = tmp_path / "run"
    cmd = _train_cmd(catch_data, run, "--steps", "60", "--checkpoint-seconds", "0.2")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file, deadline = run / "train_state.pt", time.time() + 300
    state = {}
    while time.time() < deadline and proc.poll() is None:
        try:
            state = torch.load(state_file, weights_only=True) if state_file.exists() else {}
        except (RuntimeError, EOFError):  # read while being replaced: try again
            state = {}
        if state.get("phase") == "dynamics" and state.get("step", 0) >= 3:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "training ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = state["step"]
    out = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    final = torch.load(state_file, weights_only=True)
    assert final["phase"] == "done" and final["global_step"] == 60  # 24 + 6 + 27 + 3 outcome steps
    assert killed_at >= 3
    # the resumed run went on in the dynamics phase: the tokenizer and termination phases, done before the kill,
    # did not run again (a run started over would list them in its table)
    assert "dynamics steps" in out.stdout and "outcome steps" in out.stdout, out.stdout
    assert "tokenizer steps" not in out.stdout and "termination steps" not in out.stdout, out.stdout
    load(run)


def test_the_termination_cnns_size_comes_from_the_command_line(catch_data, tmp_path):
    from dreamworld.cli.main import main

    run = tmp_path / "run"
    main(["train", "--data", str(catch_data), "--out", str(run), "--wandb", "disabled", "--steps", "4",
          "--tokenizer.batch-size", "2", "--dynamics.batch-size", "2", "--termination.batch-size", "4", "--holdout",
          "0.34", "--eval-samples", "2", "--termination-channels", "8", "8", "8", "--termination-hidden", "16"])
    cnn = load(run).termination
    assert cnn.cfg.channels == [8, 8, 8] and cnn.cfg.hidden == 16 and cnn.end_head.in_features == 16


def test_resume_without_a_run_and_training_over_a_run_are_refused(catch_data, tmp_path):
    out = subprocess.run([*_train_cmd(catch_data, tmp_path / "none", "--steps", "2"), "--resume"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "nothing to resume" in out.stderr


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="needs the wandb extra")
def test_wandb_offline_run_records_metrics(catch_data, tmp_path):
    train(str(catch_data), str(tmp_path / "run"), _toy_cfg(catch_data),
          fast(60, termination=TerminationPhase(share=0.1)), wandb="offline")
    import wandb

    wandb.teardown()  # run.finish() can return before wandb's service has written the log out; this waits for it
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    history = b"".join(f.read_bytes() for f in runs[0].glob("*.wandb"))
    for name in (b"train/dynamics/token_loss", b"train/tokenizer/loss", b"train/termination/loss", b"eval/psnr_1",
                 b"eval/reward_f1"):
        assert name in history, name


def _random_play_return(env_id: str, episodes: int, steps: int, seed: int = 0) -> float:
    """Mean return of the first episode of `episodes` games under uniform random actions, as random play's real
    half promises: game i reset with seed + i, the actions of one MultiDiscrete space seeded with `seed`, at most
    `steps` steps."""
    envs = [gym.make(env_id, max_episode_steps=steps) for _ in range(episodes)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    space = gym.spaces.MultiDiscrete([envs[0].action_space.n] * episodes, seed=seed)
    returns, done = np.zeros(episodes), np.zeros(episodes, bool)
    while not done.all():
        actions = space.sample()
        for i, env in enumerate(envs):
            if not done[i]:
                _, reward, terminated, truncated, _ = env.step(actions[i])
                returns[i] += reward
                done[i] = terminated or truncated
    return float(returns.mean())


def test_collect_train_evaluate_from_the_command_line(tmp_path):
    data, run, report = tmp_path / "data", tmp_path / "run", tmp_path / "report"
    dw = [sys.executable, "-m", "dreamworld"]
    subprocess.run([*dw, "collect", "--env", "Bricks", "--steps", "1200", "--out", str(data), "--num-envs", "3"],
                   check=True, capture_output=True)
    out = subprocess.run(_train_cmd(data, run, "--steps", "12", "--termination", "tokens"), capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert load(run).termination is None and load(run).dynamics.end_head is not None  # the others train the CNN
    assert "dreamworld train" in out.stdout and "PSNR h=1" in out.stdout
    out = subprocess.run([*dw, "evaluate", "--checkpoint", str(run), "--data", str(data), "--horizon", "8",
                          "--samples", "8", "--holdout", "0.34", "--out", str(report), "--random-play", "3",
                          "--closed-loop-steps", "20", "--closed-loop-episodes", "2"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((report / "metrics.json").read_text())
    for key in ("psnr", "ssim", "baseline_psnr"):
        assert set(metrics[key]) == {"1", "2", "4", "8"}
    for key in ("reconstruction_psnr", "reward_f1", "termination_f1", "episodes", "frames"):
        assert key in metrics
    assert metrics["frames"] == 8 * 8
    play = metrics["random_play"]  # random play in the dream and in the real game, side by side
    assert play["episodes"] == 3 and 0 <= play["dream_terminated"] <= 1
    assert play["real_return"] == pytest.approx(_random_play_return("dreamworld/Bricks-v0", 3, play["steps"]))
    assert 1 <= play["dream_length"] <= play["steps"] and 1 <= play["real_length"] <= play["steps"]
    assert "random play" in out.stdout
    closed = metrics["closed_loop"]  # graded policies in the dream and in the real game
    assert len(closed["policies"]) >= 2 and (report / "closed_loop.mp4").stat().st_size > 1000
    for key in ("psnr", "moving_psnr", "object_recall", "object_precision", "score_match"):
        assert set(metrics[key]) == {"1", "2", "4", "8"}
    assert (report / "psnr.png").stat().st_size > 1000
    video = iio.imread(report / "rollout.mp4")
    assert video.shape[0] == 4 * 8 and video.shape[-1] == 3  # 4 example rollouts of 8 frames
    assert np.asarray(iio.imread(report / "rollout.gif")).shape[0] == 4 * 8
    assert Path(run, "model.safetensors").exists()


def test_no_held_out_score_in_the_last_eval_seconds_of_a_timed_phase(tmp_path, monkeypatch):
    """Scores fall every eval_seconds of a phase, but none in its last eval_seconds: training ends with one. On a
    clock that moves 1 s per step, a 20 s phase with eval_seconds 5 scores at 5 s and 10 s, and not at 15 s."""
    from dreamworld.model.world_model import WorldModel
    from dreamworld.tracking import Tracker
    from dreamworld.train import phases

    now = [0.0]
    monkeypatch.setattr(phases.time, "perf_counter", lambda: now[0])
    model = WorldModel(toy_config())
    params = list(model.termination.parameters())

    def loss():
        now[0] += 1.0
        return sum(p.square().sum() for p in params), {}

    scored = []
    cfg = TrainConfig(minutes=20 / 60 / 0.1, termination=TerminationPhase(share=0.1), eval_seconds=5,
                      checkpoint_seconds=1e9)  # 20 s
    summary = phases.run_phase("termination", model, params, loss, 1e-3, cfg, {"global_step": 0}, lambda _: None,
                               Tracker("disabled", tmp_path, {}, job="test"), on_eval=scored.append)
    assert summary["steps"] == 20
    assert scored == [5, 10]


def test_time_spent_between_phases_comes_out_of_the_budget(tmp_path, capsys):
    """With --minutes the tokenizer and termination model train for their shares; the dynamics end when the budget
    less the outcome share is spent on the run's clock (so encoding the frames comes out of them), and the outcome
    phase when all of it is. A phase that starts late gets less time, one that starts after its end none, and a
    resumed phase keeps the budget it started with."""
    from dreamworld.model.world_model import WorldModel
    from dreamworld.tracking import Tracker
    from dreamworld.train.phases import RunClock, phase_end, run_phase

    cfg = TrainConfig(minutes=10, outcome=OutcomePhase(share=0.08))
    assert [phase_end(cfg, p) for p in ("tokenizer", "termination", "dynamics", "outcome")] == pytest.approx(
        [None, None, 552, 600])
    assert phase_end(TrainConfig(steps=100), "dynamics") is None  # a budget of steps only: no clock

    model = WorldModel(toy_config())
    params = list(model.termination.parameters())
    tracker = Tracker("disabled", tmp_path, {}, job="test")
    saved = []

    def loss():
        return sum(p.square().sum() for p in params), {}

    def phase(elapsed: float, state: dict, name: str = "outcome", steps: int | None = None):
        clock = RunClock(time.perf_counter() - elapsed)
        cfg = TrainConfig(minutes=0.1, steps=steps, checkpoint_seconds=0)
        return run_phase(name, model, params, loss, 1e-3, cfg, state, saved.append, tracker, clock=clock)

    # of a 6 s run (0.1 minutes) the outcome phase has 0.48 s and ends at 6 s
    assert phase(6.1, {"global_step": 0})["steps"] == 0  # starts after its end, and says so
    assert "no time left" in capsys.readouterr().err
    late = phase(5.9, {"global_step": 0})  # 0.1 s left
    assert 0 < late["seconds"] < 0.48 and late["steps"] > 0
    assert saved[-1]["seconds_budget"] == pytest.approx(0.1, abs=0.05)
    resumed = phase(100.0, {**saved[-1], "elapsed": 0.0, "global_step": 0})  # the clock ran on while it was down
    assert resumed["steps"] > 0 and resumed["seconds"] < 0.48
    assert phase(100.0, {"global_step": 0}, "termination")["steps"] > 0  # trains for its share, whatever the clock
    assert phase(6.1, {"global_step": 0}, steps=1000)["steps"] == 0  # with --steps too, out of time is out
    resumed = phase(5.9, {**saved[-1], "seconds_budget": None, "global_step": 0})  # saved by a run of --steps
    assert resumed["seconds"] < 0.48


def test_model_options_build_what_they_name():
    """`train` and `loop` build their models from ModelOptions: each option lands in the config it names."""
    from dreamworld.model.presets import ModelOptions

    plain = ModelOptions().config()
    assert plain.preset == "tiny" and plain.termination is not None
    cfg = ModelOptions(preset="small", termination_channels=(8, 16), termination_hidden=32,
                       tokenizer_encoder="patches").config()
    assert cfg.preset == "small" and cfg.tokenizer.encoder == "patches"
    assert (cfg.termination.channels, cfg.termination.hidden) == ([8, 16], 32)
    assert ModelOptions(termination="tokens").config().termination is None
    assert ModelOptions().differences(cfg) == [
        "preset 'small' (asked: 'tiny')", "termination_channels [8, 16] (asked: [16, 32, 32])",
        "termination_hidden 32 (asked: 128)", "dynamics_size [384, 6, 6] (asked: [128, 2, 2])"]
    assert ModelOptions().differences(plain) == []
    assert ModelOptions(tokenizer_channels=(16, 32, 64)).config().tokenizer.channels == [16, 32, 64]
    assert ModelOptions().differences(ModelOptions(tokenizer_channels=(16, 32, 64)).config()) == [
        "tokenizer_channels [16, 32, 64] (asked: [32, 64, 128])"]
    assert ModelOptions().differences(ModelOptions(tokenizer_encoder="frame").config()) == [
        "tokenizer_encoder 'frame' (asked: 'patches')"]
    dyn = ModelOptions(dynamics_size=(256, 4, 4)).config().dynamics
    assert (dyn.d_model, dyn.n_layers, dyn.n_heads) == (256, 4, 4)
    assert ModelOptions().differences(ModelOptions(dynamics_size=(256, 4, 4)).config()) == [
        "dynamics_size [256, 4, 4] (asked: [128, 2, 2])"]
    for size in ((96, 2, 2), (128, 0, 2), (128, 2, 0)):  # a head width of 48; no layers; no heads
        with pytest.raises(ValueError, match="--dynamics-size .* WIDTH / HEADS one of 16, 32, 64, 128"):
            ModelOptions(dynamics_size=size).config()
    with pytest.raises(ValueError, match="needs 3 widths for the tiny preset"):
        ModelOptions(tokenizer_channels=(16, 32)).config()
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        ModelOptions(preset="huge").config()


def test_the_warmup_ends_at_its_share_of_a_phase_that_gets_few_steps():
    def cosine(done):
        return 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * done))

    assert lr_scale(0, 0.0, 100, 0.05) == pytest.approx(0.01)  # the first step: one step of the 100
    assert lr_scale(10, 0.05, 100, 0.05) == pytest.approx(cosine(0.05))  # warm after 5% of the budget
    assert lr_scale(10, 0.025, 100, 0.05) == pytest.approx(0.5 * cosine(0.025))
    assert lr_scale(10, 0.5, 100) == pytest.approx(0.11 * cosine(0.5))  # no share: step 11 of the 100
    assert lr_scale(199, 0.5, 100) == pytest.approx(cosine(0.5))  # warm after 100 steps


def test_every_phase_updates_with_a_fused_adamw_where_the_device_has_one():
    torch.manual_seed(0)
    weights, bias = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.zeros(4))
    cfg = TrainConfig()
    groups = adamw([{"params": [weights], "lr_scale": 0.1}, {"params": [bias]}], 1e-2, cfg)
    assert groups.defaults["fused"] and len(groups.param_groups) == 2
    assert groups.param_groups[0]["lr_scale"] == 0.1  # a group's own keys survive
    fused, loop = adamw([weights, bias], 1e-2, cfg), adamw([weights, bias], 1e-2, cfg, fused=False)
    assert fused.defaults["fused"] and not loop.defaults["fused"]
    results = []
    for opt in (fused, loop):  # the same update either way, from the same start
        w, b = weights.detach().clone(), bias.detach().clone()
        for _ in range(3):
            opt.zero_grad()
            (weights.square().sum() + (bias - 1).square().sum()).backward()
            opt.step()
        results.append((weights.detach().clone(), bias.detach().clone()))
        weights.data.copy_(w)
        bias.data.copy_(b)
    torch.testing.assert_close(results[0], results[1])
    assert not torch.equal(results[0][0], weights)  # the update moved the weights


def test_every_train_option_on_the_command_line_reaches_train(monkeypatch, tmp_path):
    """`dreamworld train` with every TrainConfig field, each phase's included (--tokenizer.lr, ...), set away from
    its default hands train() exactly those values."""
    import dataclasses
    from typing import get_args, get_type_hints

    from dreamworld.cli import main as cli_main

    def changed(config, prefix: str = "") -> tuple[dict, list[str]]:
        """(the config's fields set away from their defaults, as replace() takes them; the flags that set them)"""
        hints, values, argv = get_type_hints(type(config)), {}, []
        for field in dataclasses.fields(config):
            default, flag = getattr(config, field.name), f"--{prefix}{field.name.replace('_', '-')}"
            if dataclasses.is_dataclass(default):
                inner, inner_argv = changed(default, f"{prefix}{field.name}.")
                values[field.name], argv = dataclasses.replace(default, **inner), argv + inner_argv
                continue
            if field.name == "device":
                continue  # cuda needs a GPU
            if isinstance(default, bool):
                value = not default
            elif isinstance(default, str):
                value = next(c for c in get_args(hints[field.name]) if c != default)
            elif default is None:
                value = {"minutes": 2.5, "steps": 7, "sequence_frames": 4, "lr": 2e-3}[field.name]
            elif isinstance(default, int):
                value = default + 1
            else:
                value = default / 2 if default else 0.25
            values[field.name] = value
            argv += [flag, str(value)] if not isinstance(value, bool) else [flag if value else f"--no-{flag[2:]}"]
        return values, argv

    given, flags = changed(TrainConfig())
    seen = {}

    def fake_train(data, out, model_cfg, cfg, **kwargs):
        seen["cfg"] = cfg
        raise KeyboardInterrupt  # stop before the summary

    monkeypatch.setattr("dreamworld.train.trainer.train", fake_train)
    (tmp_path / "data").mkdir()
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        cli_main.main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *flags])
    assert "cfg" in seen, "train() was not called"
    assert seen["cfg"] == dataclasses.replace(TrainConfig(), **given)
    assert sum(flag.startswith("--") for flag in flags) >= 35
