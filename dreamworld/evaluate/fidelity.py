"""Fidelity evaluation: how close open-loop imagination stays to what really happened, in numbers and pictures.

From real context frames, with the real actions fed in, the model imagines `horizon` steps; each imagined frame
is compared with the real one (PSNR, SSIM, PSNR over the pixels that moved) and with the copy-the-last-real-frame
baseline; for games with an object parser (dreamworld.envs.games.objects), the sprites, score and lives parsed from
the imagined frames are matched to the real ones (dreamworld.evaluate.metrics). Reward and termination heads are
scored one step ahead (teacher forced) over every held-out step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamworld.envs import EpisodeDataset
from dreamworld.envs.games.objects import parser
from dreamworld.evaluate.metrics import carried_sprites, merge_counts, moving_psnr, object_counts, object_scores
from dreamworld.io import atomic_path, write_json
from dreamworld.media import side_by_side
from dreamworld.model.tokenizer import PSNR_CAP_DB, psnr
from dreamworld.model.world_model import WorldModel
from dreamworld.tracking import Tracker
from dreamworld.train.data import Steps

HORIZON_KEYS = (1, 2, 4, 8, 16, 32, 64)


def frame_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR (dB on 0..255, an exact match scores PSNR_CAP_DB) of uint8 (..., H, W, 3) -> (...,)."""
    mse = (a.float() - b.float()).square().flatten(-3).mean(-1)  # (...,)
    floor = 255.0**2 * 10 ** (-PSNR_CAP_DB / 10)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(floor))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM (Gaussian window 11, sigma 1.5, channels averaged) of uint8 (..., H, W, 3) -> (...,)."""
    lead = a.shape[:-3]
    x = a.reshape(-1, *a.shape[-3:]).permute(0, 3, 1, 2).float()  # (M, 3, H, W)
    y = b.reshape(-1, *b.shape[-3:]).permute(0, 3, 1, 2).float()  # (M, 3, H, W)
    g = torch.exp(-((torch.arange(11, dtype=torch.float32) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    rows, cols = g.view(1, 1, 11, 1).expand(3, 1, 11, 1), g.view(1, 1, 1, 11).expand(3, 1, 1, 11)

    def blur(t):  # separable Gaussian, valid region only
        return F.conv2d(F.conv2d(t, rows, groups=3), cols, groups=3)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))  # (M, 3, h, w)
    return s.mean(dim=(1, 2, 3)).view(lead)


def event_f1(predicted: np.ndarray, actual: np.ndarray) -> float | None:
    """F1 of event predictions coded as ints (0 = no event, otherwise the event's kind, e.g. a reward's sign);
    a prediction counts when its kind matches. None when there are neither real nor predicted events."""
    predicted, actual = np.asarray(predicted, dtype=int), np.asarray(actual, dtype=int)
    tp = float(np.sum((predicted != 0) & (predicted == actual)))
    fp, fn = float(np.sum(predicted != 0)) - tp, float(np.sum(actual != 0)) - tp
    if tp + fp + fn == 0:
        return None
    return 2 * tp / (2 * tp + fp + fn)


def _rollout_starts(ds: EpisodeDataset, episodes: list[int], context: int, horizon: int, samples: int,
                    seed: int) -> list[tuple[int, int]]:
    """(episode, first context frame) pairs spread evenly over the held-out episodes."""
    spans = [(i, s) for i in episodes for s in range(0, ds.episodes[i].steps - context - horizon + 2, 4)]
    if not spans:
        raise ValueError(f"no held-out episode has {context + horizon} steps: collect longer episodes or lower "
                         "--horizon")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(spans), size=min(samples, len(spans)), replace=False)
    return [spans[k] for k in sorted(pick)]


def _frame_parser(env_id: str | None):
    """The object parser of `env_id`'s frames (frame -> FrameObjects), or None for a game without one."""
    return parser(env_id) if env_id else None


def _number(x) -> float | None:
    """A float for metrics.json, None for NaN (nothing there to score)."""
    return None if x is None or not np.isfinite(x) else float(x)


def _at_keys(curve: list, horizon: int) -> dict[str, float | None]:
    """A per-step curve (index 0: step 1) at the HORIZON_KEYS within `horizon`."""
    return {str(h): _number(curve[h - 1]) for h in HORIZON_KEYS if h <= horizon}


def _object_step_counts(parse, real: np.ndarray, imagined: np.ndarray, keys: list[tuple[int, int]],
                        parsed: dict) -> list[dict]:
    """Per horizon step, `object_counts` of a batch's imagined frames (B, horizon, H, W, 3) against the real ones
    (B, 1 + horizon, H, W, 3), from the last context frame on (whose sprites are the ones a dream can know of);
    keys[b] = (episode, frame index of real[b, 0]) names each real frame in `parsed`, so each is parsed once."""
    real_seq, drawn_seq, carried = [], [], []
    for b, (episode, first) in enumerate(keys):
        for t in range(real.shape[1]):
            if (episode, first + t) not in parsed:
                parsed[episode, first + t] = parse(real[b, t])
        sequence = [parsed[episode, first + t] for t in range(real.shape[1])]  # 1 + horizon FrameObjects
        real_seq.append(sequence[1:])
        carried.append(carried_sprites(sequence)[1:])
        drawn_seq.append([parse(frame) for frame in imagined[b]])
    return [object_counts([r[t] for r in real_seq], [d[t] for d in drawn_seq], carried=[c[t] for c in carried])
            for t in range(imagined.shape[1])]


def _object_metrics(steps: list[dict], horizon: int) -> dict:
    """metrics.json entries from per-step `object_scores`: object_recall, object_precision, score_match and
    lives_match at the HORIZON_KEYS, and per kind object_recall_by_kind / object_precision_by_kind; "curves"
    holds every step."""
    curves = {k: [s[k] for s in steps] for k in ("object_recall", "object_precision", "score_match", "lives_match")}
    kinds = sorted({kind for s in steps for kind in s["recall_by_kind"]})
    for name, field in (("object_recall_by_kind", "recall_by_kind"), ("object_precision_by_kind", "precision_by_kind")):
        curves[name] = {kind: [s[field].get(kind) for s in steps] for kind in kinds}
    metrics = {k: _at_keys(v, horizon) for k, v in curves.items() if not k.endswith("_by_kind")}
    for name in ("object_recall_by_kind", "object_precision_by_kind"):
        metrics[name] = {kind: _at_keys(v, horizon) for kind, v in curves[name].items()}
    metrics["curves"] = curves
    return metrics


@torch.no_grad()
def fidelity(model: WorldModel, ds: EpisodeDataset, episodes: list[int], horizon: int = 16, samples: int = 128,
             batch_size: int = 32, seed: int = 0) -> tuple[dict, dict]:
    """Metrics over `episodes` of `ds`, and examples (real, imagined frames) for videos.

    Returns (metrics, examples): metrics as in metrics.json, examples {"real", "imagined"} uint8 (S, horizon, H, W, 3)
    for the first few samples. Per-step scores sit at the HORIZON_KEYS within `horizon` (metrics[name][str(h)]) and
    in full under metrics["curves"]; object scores only for games with an object parser.
    """
    context = model.cfg.dynamics.context_frames
    starts = _rollout_starts(ds, episodes, context, horizon, samples, seed)
    parse, parsed, step_counts = _frame_parser(model.cfg.env_id), {}, []
    scores = {k: [] for k in ("psnr", "ssim", "baseline_psnr", "baseline_ssim", "moving_psnr", "baseline_moving_psnr")}
    examples = {"real": [], "imagined": []}
    for b in range(0, len(starts), batch_size):
        windows = [ds.window(i, s, context - 1 + horizon) for i, s in starts[b : b + batch_size]]
        frames = torch.from_numpy(np.stack([w["frames"] for w in windows]))  # (B, K+H, H, W, 3)
        actions = torch.from_numpy(np.stack([w["actions"] for w in windows]))  # (B, K-1+H, ...)
        imagined, _, _ = model.imagine(frames[:, :context], actions)
        real = frames[:, context:]  # (B, horizon, H, W, 3)
        before = frames[:, context - 1 : -1]  # (B, horizon, H, W, 3) the real frame before each
        baseline = frames[:, context - 1 : context].expand_as(real)  # (B, horizon, H, W, 3)
        imagined = imagined.cpu()
        scores["psnr"].append(frame_psnr(imagined, real))
        scores["ssim"].append(ssim(imagined, real))
        scores["baseline_psnr"].append(frame_psnr(baseline, real))
        scores["baseline_ssim"].append(ssim(baseline, real))
        scores["moving_psnr"].append(torch.from_numpy(moving_psnr(imagined.numpy(), real.numpy(), before.numpy())))
        scores["baseline_moving_psnr"].append(torch.from_numpy(moving_psnr(before[:, :1].numpy(), real.numpy(),
                                                                           before.numpy())))  # (B, horizon)
        if parse is not None:
            keys = [(i, s + context - 1) for i, s in starts[b : b + batch_size]]
            step_counts.append(_object_step_counts(parse, frames[:, context - 1 :].numpy(), imagined.numpy(), keys,
                                                   parsed))
        if b == 0:
            examples = {"real": real[:4].numpy(), "imagined": imagined[:4].numpy()}
    per_step = {k: torch.cat(v).double().nanmean(0).tolist() for k, v in scores.items()}  # each horizon floats
    metrics = {k: _at_keys(v, horizon) for k, v in per_step.items()}
    metrics["curves"] = {k: [_number(x) for x in v] for k, v in per_step.items()}
    if parse is not None:
        objects = _object_metrics([object_scores(merge_counts(*c)) for c in zip(*step_counts, strict=True)], horizon)
        metrics["curves"] |= objects.pop("curves")
        metrics |= objects
    metrics.update(head_scores(model, ds, episodes))
    drawn, real_frames = reconstruction_frames(model, ds, episodes)
    metrics["reconstruction_psnr"] = psnr(drawn, real_frames)
    if parse is not None:
        metrics["reconstruction_objects"] = object_scores(object_counts([parse(f) for f in real_frames],
                                                                        [parse(f) for f in drawn.numpy()]))
    metrics.update({"episodes": len(episodes), "frames": len(starts) * horizon, "rollouts": len(starts),
                    "horizon": horizon, "context_frames": context})
    return metrics, examples


@torch.no_grad()
def reconstruction_frames(model: WorldModel, ds: EpisodeDataset, episodes: list[int], every: int = 7,
                          frames: int = 512) -> tuple[torch.Tensor, np.ndarray]:
    """The model's drawings of every `every`-th frame after the first of `episodes` (at most `frames` of them)
    from their own tokens, and those real frames: uint8 (F, H, W, 3) each."""
    after = np.concatenate([ds.episode(i)["frames"][1::every] for i in episodes])[:frames]  # (F, H, W, 3)
    drawn = [model.tokenizer.decode_uint8(model.encode(torch.from_numpy(after[i : i + 128]))).cpu()
             for i in range(0, len(after), 128)]  # each (b, H, W, 3)
    return torch.cat(drawn), after


@torch.no_grad()
def reconstruction_psnr(model: WorldModel, ds: EpisodeDataset, episodes: list[int], every: int = 7,
                        frames: int = 512) -> float:
    """PSNR of the model's drawings of every `every`-th frame after the first of `episodes` (at most `frames` of
    them) from their own tokens."""
    return psnr(*reconstruction_frames(model, ds, episodes, every, frames))


@torch.no_grad()
def head_scores(model: WorldModel, ds: EpisodeDataset, episodes: list[int]) -> dict:
    """Reward and termination F1 over every step of `episodes`, read as in a dream but from real frames: rewards
    (and terminations, without a termination CNN) by the dynamics' outcome head from the real context and the next
    frame's tokens, terminations by the termination CNN from the tokenizer's drawings of the frames before and
    after each step. A reward event is a nonzero reward; it counts as found when the predicted sign matches."""
    T = 4 * model.cfg.dynamics.context_frames
    pred_r, true_r, pred_e, true_e = [], [], [], []
    for i in episodes:
        ep = ds.episode(i)
        frames = torch.from_numpy(ep["frames"])  # (S+1, H, W, 3)
        tokens = model.encode(frames)  # (S+1, N)
        actions = model.actions_tensor(ep["actions"])
        for s in range(0, len(actions), T):  # chunks of T steps; a chunk's first steps see less than a full window
            e = min(s + T, len(actions))
            _, reward_logits, end_logits = model.dynamics(tokens[None, s:e], actions[None, s:e],
                                                          tokens[None, s + 1 : e + 1])  # (1, e - s, 3), (1, e - s)
            if model.termination is not None:
                drawn = model.tokenizer.decode(tokens[s : e + 1])  # (e - s + 1, 3, H, W)
                end_logits = model.termination(drawn[:-1], drawn[1:])[None]  # (e - s,) -> (1, e - s)
            pred_r.append(reward_logits[0].argmax(-1).cpu().numpy() - 1)
            pred_e.append((end_logits[0] > 0).cpu().numpy())
        true_r.append(np.sign(ep["rewards"]).astype(int))
        true_e.append(ep["terminated"].astype(bool))
    pr, tr = np.concatenate(pred_r), np.concatenate(true_r)
    pe, te = np.concatenate(pred_e), np.concatenate(true_e)
    return {"reward_f1": event_f1(pr, tr), "termination_f1": event_f1(pe, te), "reward_events": int(np.sum(tr != 0)),
            "terminations": int(np.sum(te))}


def write_report(out: str | Path, metrics: dict, examples: dict, fps: int) -> dict[str, Path]:
    """Write metrics.json, psnr.png (model vs baseline over the horizon, objects beside) and rollout.mp4/.gif
    (real | imagined | difference), each atomically (a kill leaves the old file or the new one). Returns the
    paths."""
    from dreamworld.media import write_video

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    paths = {"metrics": out / "metrics.json", "plot": plot_psnr(metrics, out / "psnr.png")}
    frames = side_by_side(examples["real"], examples["imagined"])
    paths["video"] = write_video(out / "rollout.mp4", frames, fps)
    paths["gif"] = write_video(out / "rollout.gif", frames, fps)
    return paths


def _curve(metrics: dict, name: str) -> np.ndarray | None:
    """metrics["curves"][name] as floats (None -> NaN, a gap in the plot), or None when absent."""
    curve = metrics["curves"].get(name)
    return None if curve is None else np.array([np.nan if x is None else x for x in curve], dtype=float)


def plot_psnr(metrics: dict, path: Path) -> Path:
    """PSNR and moving-pixel PSNR per horizon step, model vs copy-last-frame baseline; beside it, when the game has
    an object parser, object recall and precision over the horizon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(metrics["curves"]["psnr"]) + 1)
    objects = _curve(metrics, "object_recall") is not None
    fig, axes = plt.subplots(1, 2 if objects else 1, figsize=(11 if objects else 6, 3.5), dpi=120, squeeze=False)
    ax = axes[0, 0]
    ax.plot(steps, _curve(metrics, "psnr"), "o-", color="C0", label="world model")
    ax.plot(steps, _curve(metrics, "baseline_psnr"), "s--", color="C1", label="copy last real frame")
    if _curve(metrics, "moving_psnr") is not None:
        ax.plot(steps, _curve(metrics, "moving_psnr"), "o-", color="C2", label="world model, moving pixels")
        ax.plot(steps, _curve(metrics, "baseline_moving_psnr"), "s--", color="C3", label="copy last, moving pixels")
    ax.set_xlabel("steps imagined (open loop)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"fidelity on {metrics['episodes']} held-out episodes ({metrics['rollouts']} rollouts)")
    ax.legend(fontsize="small")
    if objects:
        ax = axes[0, 1]
        ax.plot(steps, _curve(metrics, "object_recall"), "o-", label="object recall (sprites seen at the start)")
        ax.plot(steps, _curve(metrics, "object_precision"), "s-", label="object precision")
        ax.set_xlabel("steps imagined (open loop)")
        ax.set_ylim(0, 1.02)
        ax.set_title("objects drawn where they really are")
        ax.legend(fontsize="small")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def log_reconstructions(model: WorldModel, steps: Steps, tracker: Tracker, step: int) -> None:
    """A strip of real frames of `steps` over the tokenizer's drawings of them."""
    index = torch.from_numpy(np.linspace(1, len(steps.frames) - 1, 8).astype(int))  # (8,)
    pick = torch.from_numpy(steps.frames[index.numpy()])  # (8, H, W, 3)
    tokens = model.encode(pick)  # (8, N)
    drawn = model.tokenizer.decode_uint8(tokens).cpu().numpy()  # (8, H, W, 3)
    tracker.image("train/tokenizer/reconstructions", np.concatenate([np.concatenate(pick.numpy(), 1),
                                                                     np.concatenate(drawn, 1)], 0), step,
                  caption="top: real, bottom: drawn")


def log_eval(model: WorldModel, ds: EpisodeDataset, episodes: list[int], tracker: Tracker, step: int,
              samples: int) -> dict:
    """Fidelity on held-out episodes, logged as eval/... (eval/psnr_1, eval/moving_psnr_1, eval/object_recall_1, ...
    at the HORIZON_KEYS, scores with nothing to score left out) with a real | imagined | difference video."""
    model.eval()
    horizon = min(16, max(1, min(ds.episodes[i].steps for i in episodes) - model.cfg.dynamics.context_frames))
    metrics, examples = fidelity(model, ds, episodes, horizon=horizon, samples=samples)
    flat = {f"eval/{k}_{h}": v for k, d in metrics.items()
            if k in ("psnr", "ssim", "baseline_psnr", "moving_psnr", "baseline_moving_psnr", "object_recall",
                     "object_precision", "score_match", "lives_match")
            for h, v in d.items() if v is not None}
    flat |= {f"eval/{k}": metrics[k] for k in ("reconstruction_psnr", "reward_f1", "termination_f1")
             if metrics.get(k) is not None}
    flat |= {f"eval/reconstruction_{k}": v for k, v in metrics.get("reconstruction_objects", {}).items()
             if k in ("object_recall", "object_precision") and v is not None}
    tracker.log(flat, step=step)
    tracker.video("eval/real_imagined_difference", side_by_side(examples["real"], examples["imagined"]),
                  fps=model.cfg.render_fps, step=step)
    return metrics
