"""`dreamworld demo --quick`: every stage end to end at toy scale, the report folder and the summary."""

import json

import imageio.v3 as iio

from dreamworld.cli import main


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
