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


def test_train_or_resume_reads_rewards_off_the_frames_when_asked(tmp_path):
    """scripts/make_worlds.py --rewards-frames-games trains through it: the termination CNN gains its reward head."""
    from dreamworld import checkpoint as ckpt
    from dreamworld.envs import collect
    from dreamworld.jobs.demo import train_or_resume
    from dreamworld.model.presets import ModelOptions
    from dreamworld.train.config import TrainConfig

    data = tmp_path / "catch"
    collect("Catch", data, 400, policy="mixed", seed=0, num_envs=2, progress=False)
    cfg = TrainConfig(steps=8, tokenizer_batch_size=2, batch_size=2, termination_batch_size=8, warmup_steps=1,
                      holdout=0.0)
    for rewards_frames in (True, False):
        run = tmp_path / f"run_{rewards_frames}"
        options = ModelOptions(rewards="frames" if rewards_frames else "tokens")
        summary = train_or_resume(data, run, cfg, "disabled", options)
        assert ("outcome" in summary) is not rewards_frames  # nothing reads the dynamics' reward head then
        assert (ckpt.load(run).termination.reward_head is not None) is rewards_frames
        assert train_or_resume(data, run, cfg, "disabled") == {}  # finished: reused


def test_the_demo_trains_longer_on_a_cpu_without_native_bfloat16(monkeypatch, capsys):
    """5 minutes where the CPU computes bfloat16 natively; 12, and a line saying why, where it computes float32."""
    from dreamworld.jobs import demo

    monkeypatch.setattr(demo, "native_bf16", lambda device: True)
    assert demo.default_train_minutes() == 5.0 and capsys.readouterr().out == ""
    monkeypatch.setattr(demo, "native_bf16", lambda device: False)
    assert demo.default_train_minutes() == 12.0 and "--train-minutes" in capsys.readouterr().out
