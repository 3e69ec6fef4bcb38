"""Fidelity metrics of what a player sees (dreamworld.evaluate.metrics) on hand-made frames and objects with known
answers, and their wiring into evaluate.fidelity on a toy model."""

import math

import numpy as np
import pytest
import torch
from toy_models import toy_config

from dreamworld.envs.games.sprites import FrameObjects, Sprite
from dreamworld.evaluate.metrics import (
    LINK_RADIUS,
    carried_sprites,
    match_objects,
    merge_counts,
    moving_psnr,
    object_counts,
    object_scores,
)
from dreamworld.model.tokenizer import PSNR_CAP_DB

pytestmark = pytest.mark.usefixtures("one_thread")


def _frame(*sprites: tuple[str, float, float], score: int | None = None, lives: int | None = None) -> FrameObjects:
    return FrameObjects(sprites=[Sprite(kind, x, y) for kind, x, y in sprites], score=score, lives=lives)


def test_moving_psnr_scores_only_the_pixels_that_moved():
    prev = np.zeros((2, 8, 8, 3), dtype=np.uint8)  # two frames; in the second nothing moves
    real = prev.copy()
    real[0, 2:4, 2:4] = 100  # a 2x2 sprite appears: 4 pixels move
    pred = real.copy()
    pred[0, 2:4, 2:4] = 90  # drawn 10 off in every channel there
    pred[:, 6:, 6:] = 255  # far off where nothing moved: not scored
    out = moving_psnr(pred, real, prev)
    assert out.shape == (2,)
    assert out[0] == pytest.approx(10 * math.log10(255**2 / 10**2))
    assert np.isnan(out[1])
    assert moving_psnr(real, real, prev)[0] == pytest.approx(PSNR_CAP_DB)  # exact: the cap


def test_a_pixel_moved_in_one_channel_is_scored_in_all_three():
    prev = np.zeros((4, 4, 3), dtype=np.uint8)
    real = prev.copy()
    real[1, 1, 0] = 50  # only red changes
    pred = real.copy()
    pred[1, 1, 1] = 30  # the error sits in green
    assert moving_psnr(pred, real, prev) == pytest.approx(10 * math.log10(255**2 / (30**2 / 3)))
    assert moving_psnr(torch.from_numpy(pred), torch.from_numpy(real), torch.from_numpy(prev)).shape == ()


def test_a_sprite_1px_off_is_matched_and_3px_off_or_of_another_kind_is_missed():
    real = [_frame(("ball", 10, 10)), _frame(("ball", 10, 10)), _frame(("ball", 10, 10))]
    drawn = [_frame(("ball", 11, 9)), _frame(("ball", 13, 10)), _frame(("gem", 10, 10))]
    out = match_objects(real, drawn)
    assert out["recall_by_kind"] == {"ball": pytest.approx(1 / 3), "gem": None}  # no real gem: no recall
    assert out["precision_by_kind"] == {"ball": 0.5, "gem": 0.0}
    assert out["object_recall"] == pytest.approx(1 / 3)
    assert out["object_precision"] == pytest.approx(0.25)  # the mean of the kinds' precisions
    assert out["counts"]["kinds"]["ball"] == {"real": 3, "recalled": 1, "drawn": 2, "correct": 1}
    assert match_objects(real[:1], [_frame(("ball", 12, 12))])["object_recall"] == 1.0  # 2 px: the radius
    assert match_objects(real[:1], [_frame(("ball", 12, 12))], radius=1.5)["object_recall"] == 0.0


def test_an_extra_drawn_sprite_lowers_precision_and_matching_is_one_to_one():
    real = [_frame(("ball", 10, 10), ("ball", 11, 10))]
    drawn = [_frame(("ball", 10, 10), ("ball", 40, 40), ("ball", 41, 40))]
    out = match_objects(real, drawn)
    assert out["object_recall"] == 0.5  # one drawn ball near both real ones recalls only one
    assert out["object_precision"] == pytest.approx(1 / 3)
    closest = match_objects([_frame(("ball", 10, 10), ("ball", 12, 10))], [_frame(("ball", 12, 10))],
                            carried=[[False, True]])
    assert closest["object_recall"] == 1.0  # the drawn ball goes to the real one 0 px away, not the first in order


def test_kinds_weigh_equally_and_frames_without_objects_score_nothing():
    real = [_frame(("paddle", 30, 60), ("brick", 4, 14), ("brick", 12, 14), ("brick", 20, 14))]
    drawn = [_frame(("paddle", 30, 60))]
    out = match_objects(real, drawn)
    assert out["recall_by_kind"] == {"brick": 0.0, "paddle": 1.0}
    assert out["object_recall"] == 0.5 and out["object_precision"] == 1.0
    assert out["precision_by_kind"]["brick"] is None  # none drawn
    empty = match_objects([_frame()], [_frame()])
    assert empty["object_recall"] is None and empty["object_precision"] is None and empty["score_match"] is None


def test_a_spawned_sprite_is_left_out_of_recall_but_not_out_of_precision():
    real = [_frame(("gem", 10, 30), ("gem", 40, 8))]  # the second spawned during the horizon
    carried = [[True, False]]
    both = match_objects(real, [_frame(("gem", 10, 30), ("gem", 40, 8))], carried=carried)
    assert both["object_recall"] == 1.0 and both["object_precision"] == 1.0  # drawing the spawn is right too
    assert both["counts"]["kinds"]["gem"] == {"real": 1, "recalled": 1, "drawn": 2, "correct": 2}
    only_old = match_objects(real, [_frame(("gem", 10, 30))], carried=carried)
    assert only_old["object_recall"] == 1.0  # missing the spawn costs nothing
    only_new = match_objects(real, [_frame(("gem", 40, 8))], carried=carried)
    assert only_new["object_recall"] == 0.0 and only_new["object_precision"] == 1.0
    with pytest.raises(ValueError, match="pair up"):
        match_objects(real, [], carried=carried)


def test_hud_match_shares_count_only_frames_with_a_real_value():
    real = [_frame(score=3, lives=2), _frame(score=3, lives=None), _frame(score=4, lives=1), _frame(score=None)]
    drawn = [_frame(score=3, lives=2), _frame(score=5, lives=2), _frame(score=None, lives=1), _frame(score=9)]
    out = match_objects(real, drawn)
    assert out["score_match"] == pytest.approx(1 / 3)  # 3 == 3; 5 != 3; None != 4; no real score in the last
    assert out["lives_match"] == 1.0  # frames 0 and 2
    assert object_scores(merge_counts(object_counts(real[:2], drawn[:2]), object_counts(real[2:], drawn[2:]))) \
        == {k: v for k, v in out.items() if k != "counts"}


def test_carried_sprites_follow_a_falling_chain_and_not_a_new_one():
    sequence = [
        _frame(("gem", 10, 10), ("catcher", 30, 60)),
        _frame(("gem", 10, 12), ("catcher", 32, 60)),
        _frame(("gem", 10, 14), ("catcher", 34, 60), ("gem", 40, 8)),  # a new gem at the top
        _frame(("gem", 40, 9), ("gem", 10, 16), ("catcher", 34, 60)),  # it falls on: still not carried
        _frame(("gem", 40, 10), ("bomb", 10, 18), ("catcher", 34, 60)),  # a bomb is no gem
    ]
    assert carried_sprites(sequence) == [[True, True], [True, True], [True, True, False], [False, True, True],
                                         [False, False, True]]


def test_carried_sprites_link_one_to_one_and_within_the_link_radius():
    sequence = [_frame(("gem", 10, 10)), _frame(("gem", 10, 11), ("gem", 12, 8))]  # a spawn 2 px beside it
    assert carried_sprites(sequence) == [[True], [True, False]]  # the closest link wins, the spawn gets none
    jump = LINK_RADIUS + 1
    assert carried_sprites([_frame(("ball", 10, 10)), _frame(("ball", 10 + jump, 10))]) == [[True], [False]]
    assert carried_sprites([_frame(("ball", 10, 10)), _frame(("ball", 10 + LINK_RADIUS, 10))]) == [[True], [True]]
    assert carried_sprites([_frame()]) == [[]]


@pytest.fixture(scope="module")
def catch_data(tmp_path_factory):
    from dreamworld.envs import collect

    data = tmp_path_factory.mktemp("data") / "catch"
    collect("Catch", data, 240, policy="mixed", seed=0, num_envs=2, progress=False)
    return data


def _toy_catch_model(data):
    from dreamworld.envs import EpisodeDataset, space_to_json
    from dreamworld.model.world_model import WorldModel

    cfg = toy_config(context=3)
    cfg.env_id = "dreamworld/Catch-v0"
    cfg.action_space = space_to_json(EpisodeDataset(data).action_space)
    torch.manual_seed(0)
    return WorldModel(cfg).eval()


def test_fidelity_reports_moving_psnr_and_objects_on_a_toy_model(catch_data, tmp_path):
    from dreamworld.envs import EpisodeDataset
    from dreamworld.evaluate.fidelity import fidelity, plot_psnr

    ds = EpisodeDataset(catch_data)
    metrics, _ = fidelity(_toy_catch_model(catch_data), ds, list(range(len(ds))), horizon=4, samples=3, batch_size=2)
    for key in ("moving_psnr", "baseline_moving_psnr", "object_recall", "object_precision", "score_match",
                "lives_match"):
        assert set(metrics[key]) == {"1", "2", "4"}, key
        assert len(metrics["curves"][key]) == 4, key
    for key in ("moving_psnr", "baseline_moving_psnr", "object_recall", "score_match", "lives_match"):
        assert all(math.isfinite(v) for v in metrics[key].values()), (key, metrics[key])
    assert all(v is None or 0 <= v <= 1 for v in metrics["object_precision"].values())
    assert metrics["object_recall_by_kind"] and all(set(d) == {"1", "2", "4"}
                                                    for d in metrics["object_recall_by_kind"].values())
    for key in ("object_recall", "score_match"):
        assert 0 <= metrics["reconstruction_objects"][key] <= 1
    assert plot_psnr(metrics, tmp_path / "psnr.png").stat().st_size > 0


def test_fidelity_of_a_perfect_dream_is_perfect(catch_data, monkeypatch):
    """With imagination that returns the real future, every new score is at its best: a check that the steps,
    frames and carried flags line up."""
    from dreamworld.envs import EpisodeDataset
    from dreamworld.evaluate.fidelity import fidelity

    ds, model = EpisodeDataset(catch_data), _toy_catch_model(catch_data)
    context, windows, window = model.cfg.dynamics.context_frames, [], ds.window
    monkeypatch.setattr(ds, "window", lambda *a: windows.append(window(*a)) or windows[-1])
    monkeypatch.setattr(model, "imagine", lambda frames, actions: (
        torch.from_numpy(np.stack([w["frames"][context:] for w in windows[-len(frames):]])), None, None))
    metrics, _ = fidelity(model, ds, list(range(len(ds))), horizon=4, samples=3, batch_size=2)
    assert metrics["moving_psnr"] == {"1": PSNR_CAP_DB, "2": PSNR_CAP_DB, "4": PSNR_CAP_DB}
    for key in ("object_recall", "object_precision", "score_match", "lives_match"):
        assert metrics[key] == {"1": 1.0, "2": 1.0, "4": 1.0}, key
    assert all(v == 1.0 for d in metrics["object_recall_by_kind"].values() for v in d.values() if v is not None)


def test_log_eval_logs_the_new_scores(catch_data):
    from dreamworld.envs import EpisodeDataset
    from dreamworld.evaluate.fidelity import log_eval

    class Recorder:
        def __init__(self):
            self.logged = {}

        def log(self, values, step):
            self.logged |= values

        def video(self, *args, **kwargs):
            pass

    ds, tracker = EpisodeDataset(catch_data), Recorder()
    log_eval(_toy_catch_model(catch_data), ds, list(range(len(ds))), tracker, step=0, samples=2)
    for key in ("eval/psnr_1", "eval/moving_psnr_1", "eval/baseline_moving_psnr_16", "eval/object_recall_1",
                "eval/score_match_16", "eval/lives_match_1", "eval/reconstruction_object_recall"):
        assert math.isfinite(tracker.logged[key]), key
