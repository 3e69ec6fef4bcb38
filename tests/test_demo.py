"""`dreamworld demo --quick`: every stage end to end at toy scale, the report folder and the summary."""

import json

import imageio.v3 as iio

from dreamworld.cli.main import main


def test_quick_demo_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["demo", "--quick", "--out", str(out), "--wandb", "disabled", "--threads", "1"])
    printed = capsys.readouterr().out
    assert "dreamworld demo on dreamworld/Catch-v0" in printed and f"{out}/report/" in printed
    report = out / "report"
    summary = json.loads((report / "summary.json").read_text())
    assert set(summary["stage_seconds"]) == {"collect", "train", "evaluate", "train-agent", "evaluate agent"}
    assert summary["real_steps"] == 1200
    assert set(summary["real_returns"]) == {"agent", "scripted", "random"}
    assert all(r["episodes"] == 2 for r in summary["real_returns"].values())
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["psnr"]) == {"1", "2", "4", "8"}
    assert (report / "psnr.png").stat().st_size > 1000
    for video in ("rollout.mp4", "rollout.gif", "agent.mp4", "agent.gif"):
        assert iio.imread(report / video).shape[-1] == 3, video
    assert (out / "agent" / "config.json").is_file() and (out / "world_model" / "model.safetensors").is_file()
    main(["demo", "--quick", "--out", str(out), "--wandb", "disabled", "--threads", "1"])  # again: continues
    again = json.loads((report / "summary.json").read_text())
    assert again["real_steps"] == 1200 and again["world_model"] == {}  # the finished world model is reused


def test_train_or_resume_builds_the_model_asked_for_and_reuses_a_finished_one(tmp_path):
    """A model that reads terminations off its tokens trains without the termination CNN's phase; once finished,
    the same call reuses it."""
    from dreamworld import checkpoint as ckpt
    from dreamworld.envs import collect
    from dreamworld.jobs.demo import train_or_resume
    from dreamworld.model.presets import ModelOptions
    from dreamworld.train.config import DynamicsPhase, TerminationPhase, TokenizerPhase, TrainConfig

    data = tmp_path / "catch"
    collect("Catch", data, 400, policy="mixed", seed=0, num_envs=2, progress=False)
    cfg = TrainConfig(steps=8, tokenizer=TokenizerPhase(batch_size=2), termination=TerminationPhase(batch_size=8),
                      dynamics=DynamicsPhase(batch_size=2), warmup_steps=1, holdout=0.0)
    for termination in ("frames", "tokens"):
        run = tmp_path / f"run_{termination}"
        summary = train_or_resume(data, run, cfg, "disabled", ModelOptions(termination=termination))
        assert ("termination" in summary) is (termination == "frames")
        model = ckpt.load(run)
        assert (model.termination is None) is (model.dynamics.end_head is not None) is (termination == "tokens")
        assert train_or_resume(data, run, cfg, "disabled") == {}  # finished: reused


def test_the_demo_trains_longer_on_a_cpu_without_native_bfloat16(monkeypatch, capsys):
    """5 minutes where the CPU computes bfloat16 natively; 12, and a line saying why, where it computes float32."""
    from dreamworld.jobs import demo

    monkeypatch.setattr(demo, "native_bf16", lambda device: True)
    assert demo.default_train_minutes() == 5.0 and capsys.readouterr().out == ""
    monkeypatch.setattr(demo, "native_bf16", lambda device: False)
    assert demo.default_train_minutes() == 12.0 and "--train-minutes" in capsys.readouterr().out
