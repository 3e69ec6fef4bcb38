"""Fidelity metrics of what a player sees: PSNR over the pixels that moved, and the game's objects found again.

Whole-frame PSNR barely notices a 2x2 ball vanishing (4 of 4096 pixels). `moving_psnr` scores only the pixels that
changed in the real game since the real frame before. `match_objects` compares the sprites, score and lives parsed
from real and drawn frames (parsers in dreamworld.envs.games.objects) kind by kind: recall is the share of real
sprites drawn where they are, precision the share of drawn sprites that are really there. `carried_sprites` tells
the sprites a dream could know of (seen in its last context frame) from those that spawned during its horizon,
which no model can place: recall leaves those out.

Pure numpy; the frames come in as uint8 (..., H, W, 3) numpy arrays (or CPU tensors).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from dreamworld.model.tokenizer import PSNR_CAP_DB

if TYPE_CHECKING:
    from dreamworld.envs.games.sprites import FrameObjects, Sprite

MATCH_RADIUS = 2.0
"""Most pixels (Chebyshev distance of centres) a drawn sprite may sit from a real one of its kind and count."""
LINK_RADIUS = 6.0
"""Most pixels (Chebyshev) a sprite moves between consecutive real frames and stays the same sprite: twice the
fastest motion in the built-in games (Bricks' paddle, 3 px per step; balls and falling items move at most 2), and
less than the 7+ px between a spawn point and anything that has been on screen a few steps."""


def moving_psnr(pred: np.ndarray, real: np.ndarray, prev_real: np.ndarray) -> np.ndarray:
    """Per-frame PSNR (dB on 0..255, capped at PSNR_CAP_DB) of `pred` against `real` over only the pixels where
    `real` differs from `prev_real` (the real frame before it) in any channel: uint8 (..., H, W, 3) each ->
    (...,) float64, NaN for frames where nothing moved (average with np.nanmean)."""
    pred, real, prev_real = np.asarray(pred), np.asarray(real), np.asarray(prev_real)
    moved = (real != prev_real).any(-1)  # (..., H, W)
    error = (pred.astype(np.int32) - real.astype(np.int32)) ** 2  # (..., H, W, 3)
    sse = np.where(moved, error.sum(-1), 0).sum((-2, -1), dtype=np.float64)  # (...,)
    count = 3.0 * moved.sum((-2, -1))  # (...,) channel values compared
    floor = 255.0**2 * 10 ** (-PSNR_CAP_DB / 10)
    mse = np.maximum(sse / np.maximum(count, 1.0), floor)  # (...,)
    return np.where(count > 0, 10 * np.log10(255.0**2 / mse), np.nan)


def _greedy_pairs(a: np.ndarray, b: np.ndarray, radius: float) -> list[tuple[int, int]]:
    """One-to-one pairs (i, j) of points a (n, 2) and b (m, 2) at most `radius` apart (Chebyshev), the closest
    pairs taken first (ties in index order)."""
    if len(a) == 0 or len(b) == 0:
        return []
    distance = np.abs(a[:, None, :] - b[None, :, :]).max(-1)  # (n, m)
    i, j = np.nonzero(distance <= radius)  # (k,) each, in index order
    order = np.argsort(distance[i, j], kind="stable")
    pairs, used_a, used_b = [], set(), set()
    for a, b in zip(i[order].tolist(), j[order].tolist(), strict=True):
        if a not in used_a and b not in used_b:
            used_a.add(a)
            used_b.add(b)
            pairs.append((a, b))
    return pairs


def _by_kind(sprites: list[Sprite]) -> dict[str, tuple[list[int], np.ndarray]]:
    """Sprites grouped by kind: kind -> (their indices in `sprites`, their centres (n, 2) as x, y)."""
    index: dict[str, list[int]] = defaultdict(list)
    for j, sprite in enumerate(sprites):
        index[sprite.kind].append(j)
    return {kind: (ids, np.array([(sprites[j].x, sprites[j].y) for j in ids], dtype=np.float64))
            for kind, ids in index.items()}


def carried_sprites(real_sequence: list[FrameObjects]) -> list[list[bool]]:
    """Which sprites of consecutive real frames (index 0: the last context frame, then the horizon) were carried
    over from frame 0: out[t][j] is True when sprite j of frame t links back frame by frame to a sprite of frame 0,
    a sprite at t linking one-to-one (closest first) to one of the same kind at t - 1 at most LINK_RADIUS px away.
    Frame 0's own sprites are all carried; one that spawned during the horizon is not, nor is anything it becomes."""
    carried = [[True] * len(real_sequence[0].sprites)]
    for before, now in zip(real_sequence, real_sequence[1:], strict=False):
        flags = [False] * len(now.sprites)
        old = _by_kind(before.sprites)
        for kind, (ids, centres) in _by_kind(now.sprites).items():
            if kind in old:
                old_ids, old_centres = old[kind]
                for a, b in _greedy_pairs(centres, old_centres, LINK_RADIUS):
                    flags[ids[a]] = carried[-1][old_ids[b]]
        carried.append(flags)
    return carried


def _empty_kind() -> dict[str, int]:
    return {"real": 0, "recalled": 0, "drawn": 0, "correct": 0}


def object_counts(real: list[FrameObjects], drawn: list[FrameObjects], radius: float = MATCH_RADIUS,
                  carried: list[list[bool]] | None = None) -> dict:
    """The counts behind `match_objects` (same arguments): {"kinds": {kind: {"real": carried real sprites,
    "recalled": those matched, "drawn": drawn sprites, "correct": those matched to any real sprite}},
    "score": [frames whose drawn score is the real one, frames with a real score], "lives": likewise}."""
    if len(real) != len(drawn) or (carried is not None and len(carried) != len(real)):
        raise ValueError(f"{len(real)} real frames, {len(drawn)} drawn, {'-' if carried is None else len(carried)} "
                         "carried flags: they pair up one to one")
    kinds: dict[str, dict[str, int]] = defaultdict(_empty_kind)
    hud = {"score": [0, 0], "lives": [0, 0]}
    for f, (r, d) in enumerate(zip(real, drawn, strict=True)):
        keep = carried[f] if carried is not None else [True] * len(r.sprites)
        drawn_groups = _by_kind(d.sprites)
        for kind, (ids, centres) in _by_kind(r.sprites).items():
            matched = _greedy_pairs(centres, drawn_groups.get(kind, ([], np.zeros((0, 2))))[1], radius)
            kinds[kind]["real"] += sum(keep[j] for j in ids)
            kinds[kind]["recalled"] += sum(keep[ids[a]] for a, _ in matched)
            kinds[kind]["correct"] += len(matched)
        for kind, (ids, _) in drawn_groups.items():
            kinds[kind]["drawn"] += len(ids)
        for name in hud:
            if getattr(r, name) is not None:
                hud[name][0] += int(getattr(d, name) == getattr(r, name))
                hud[name][1] += 1
    return {"kinds": dict(kinds), **hud}


def merge_counts(*counts: dict) -> dict:
    """The sum of several `object_counts` results (say, over batches of rollouts)."""
    kinds: dict[str, dict[str, int]] = defaultdict(_empty_kind)
    hud = {"score": [0, 0], "lives": [0, 0]}
    for c in counts:
        for kind, tally in c["kinds"].items():
            for key, n in tally.items():
                kinds[kind][key] += n
        for name in hud:
            hud[name] = [hud[name][0] + c[name][0], hud[name][1] + c[name][1]]
    return {"kinds": dict(kinds), **hud}


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def object_scores(counts: dict) -> dict:
    """Rates from `object_counts`: recall_by_kind and precision_by_kind (None for a kind with no carried real
    sprite, or no drawn one), object_recall and object_precision (the mean over the kinds that have one, each kind
    weighing equally), score_match and lives_match (share of frames with a real value whose drawn one equals it).
    None wherever nothing was there to score."""
    kinds = sorted(counts["kinds"])
    recall = {k: _share(counts["kinds"][k]["recalled"], counts["kinds"][k]["real"]) for k in kinds}
    precision = {k: _share(counts["kinds"][k]["correct"], counts["kinds"][k]["drawn"]) for k in kinds}
    return {"object_recall": _mean(list(recall.values())), "object_precision": _mean(list(precision.values())),
            "recall_by_kind": recall, "precision_by_kind": precision,
            "score_match": _share(*counts["score"]), "lives_match": _share(*counts["lives"])}


def match_objects(real: list[FrameObjects], drawn: list[FrameObjects], radius: float = MATCH_RADIUS,
                  carried: list[list[bool]] | None = None) -> dict:
    """Match the sprites parsed from drawn frames to those of the real frames, frame by frame and kind by kind.

    A real sprite is recalled when a drawn sprite of its kind lies at most `radius` px away (Chebyshev distance of
    centres; one-to-one, closest pairs first). `carried[i][j]` False marks real sprite j of frame i as spawned
    during the horizon (see `carried_sprites`): left out of recall, but a drawn sprite matched to it still counts
    as correct for precision. HUD: the share of frames whose drawn score (lives) equals the real one, over the
    frames where the real one is not None. Returns `object_scores(counts)` and the counts under "counts".
    """
    counts = object_counts(real, drawn, radius, carried)
    return {**object_scores(counts), "counts": counts}
