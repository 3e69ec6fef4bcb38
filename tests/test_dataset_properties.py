"""Property-based tests of reading damaged episode datasets (hypothesis): episode files and the manifest
truncated, bit-flipped, overwritten, grown or deleted, and manifests listing files that are not there. Reading
gives the data that was written or a DatasetError naming the file and what to do; repairing (or rebuilding the
manifest) recovers exactly the intact episodes.

One dataset of 4 small episodes (8x8 frames in chunks of 8, so episodes span 1 to 5 chunks) is written once per
module; each example damages a copy (the files it leaves alone hard-linked). 200 examples a property (1,000 with
-m slow).
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import strategies
from hypothesis import given, settings
from hypothesis import strategies as st

from dreamworld.envs import DatasetError, DatasetWriter, EpisodeDataset, repair_dataset
from dreamworld.envs.dataset import EPISODES, MANIFEST, manifest_digest

SPACE = gym.spaces.Discrete(4)
SHAPE = (8, 8, 3)
STEPS = (5, 20, 9, 33)
FIXES = ("restore it", "--repair", "dreamworld collect")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The dataset, its episodes by file name, and a scratch root."""
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(0)
    episodes = []
    with DatasetWriter(root / "data", "Toy-v0", SHAPE, SPACE, chunk_frames=8) as writer:
        for steps in STEPS:
            ep = {"frames": rng.integers(0, 256, (steps + 1, *SHAPE), dtype=np.uint8),
                  "actions": rng.integers(0, 4, steps), "rewards": rng.normal(size=steps).astype(np.float32),
                  "terminated": np.arange(steps) == steps - 1, "truncated": np.zeros(steps, bool)}
            info = writer.add_episode(**ep, policy="random")
            episodes.append((info.file, ep))
    return {"data": root / "data", "episodes": dict(episodes), "names": [name for name, _ in episodes],
            "scratch": root / "scratch"}


@pytest.fixture(scope="module", autouse=True)
def no_fsync():
    """fsync does nothing here: these tests are about what is read back, not about power cuts (and an fsync costs
    milliseconds on a busy disk)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        yield


def _copy(written) -> Path:
    """A copy of the dataset in a fresh directory, its files hard-linked."""
    written["scratch"].mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=written["scratch"])) / "data"
    shutil.copytree(written["data"], out, copy_function=os.link)
    return out


@st.composite
def damages(draw, written):
    """1 to 3 of: an episode file damaged or deleted, the manifest damaged or deleted, the manifest listing a file
    that is not there (a valid manifest: as if the file were deleted after it was listed)."""
    names = written["names"]
    manifest = (written["data"] / MANIFEST).read_bytes()
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["episode", "episode", "episode", "delete", "manifest", "delete manifest",
                                     "list missing"]))
        if kind == "episode":
            name = draw(st.sampled_from(names))
            out.append((kind, name, draw(strategies.damaged((written["data"] / EPISODES / name).read_bytes()))))
        elif kind == "delete":
            out.append((kind, draw(st.sampled_from(names)), None))
        elif kind == "manifest":
            out.append((kind, MANIFEST, draw(strategies.damaged(manifest))))
        else:
            out.append((kind, MANIFEST, draw(st.integers(len(names), 999_999))))
    return out


def _apply(data: Path, damage) -> None:
    for kind, name, arg in damage:
        if kind == "episode":
            (data / EPISODES / name).unlink(missing_ok=True)
            (data / EPISODES / name).write_bytes(arg)
        elif kind == "delete":
            (data / EPISODES / name).unlink(missing_ok=True)
        elif kind == "manifest":
            (data / MANIFEST).unlink(missing_ok=True)
            (data / MANIFEST).write_bytes(arg)
        elif kind == "delete manifest":
            (data / MANIFEST).unlink(missing_ok=True)
        elif (data / MANIFEST).exists():  # list missing: a valid manifest naming one more file
            try:
                manifest = json.loads((data / MANIFEST).read_bytes())
                manifest["episodes"].append(dict(manifest["episodes"][0], file=f"ep_{arg:06d}.npz"))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                continue  # damaged already
            manifest["sha256"] = manifest_digest(manifest)
            (data / MANIFEST).unlink()
            (data / MANIFEST).write_text(json.dumps(manifest))


def _assert_clear(error: DatasetError, data: Path) -> None:
    """The message names a file of the dataset and says what to do."""
    message = str(error)
    assert str(data) in message and (MANIFEST in message or ".npz" in message), message
    assert any(fix in message for fix in FIXES), message


def _assert_episode(ds: EpisodeDataset, i: int, original: dict) -> None:
    ep = ds.episode(i)
    for key, value in original.items():
        np.testing.assert_array_equal(ep[key], value, err_msg=key)


def _intact(written, data: Path) -> set[str]:
    """The episode files that are still there byte for byte."""
    return {name for name in written["names"] if (data / EPISODES / name).exists()
            and (data / EPISODES / name).read_bytes() == (written["data"] / EPISODES / name).read_bytes()}


@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_damaged_datasets_read_right_or_say_what_to_do(written, examples):
    """A dataset with episode files or its manifest damaged or deleted, or a manifest listing missing files:
    opening it and reading each episode, windows of it and its stats give exactly the data written or raise a
    DatasetError naming the file and what to do. Doing that (`dataset --repair` for episodes; for the manifest,
    deleting it and listing the files again as `collect` does) leaves exactly the intact episodes, reading as
    written."""

    @settings(max_examples=examples)
    @given(damages(written), st.data())
    def check(damage, data_):
        data = _copy(written)
        try:
            _apply(data, damage)
            intact = _intact(written, data)
            try:
                ds = EpisodeDataset(data)
            except DatasetError as e:
                _assert_clear(e, data)
            else:
                for i, info in enumerate(ds.episodes):
                    original = written["episodes"].get(info.file)
                    try:
                        _assert_episode(ds, i, original)
                        start = data_.draw(st.integers(0, info.steps - 1))
                        length = data_.draw(st.integers(1, info.steps - start))
                        window = ds.window(i, start, length)
                        np.testing.assert_array_equal(window["frames"],
                                                      original["frames"][start : start + length + 1])
                        np.testing.assert_array_equal(window["actions"], original["actions"][start : start + length])
                    except DatasetError as e:
                        _assert_clear(e, data)
                        assert info.file in str(e), str(e)
                try:
                    ds.stats()
                except DatasetError as e:
                    _assert_clear(e, data)
            # what the messages say to do
            try:
                dropped = repair_dataset(data)
            except DatasetError as e:  # the manifest is damaged or gone: delete it and list the files again
                _assert_clear(e, data)
                assert MANIFEST in str(e)
                (data / MANIFEST).unlink(missing_ok=True)
                with DatasetWriter(data, "Toy-v0", SHAPE, SPACE, chunk_frames=8, repair=True) as writer:
                    dropped = writer.dropped
            ds = EpisodeDataset(data)
            kept = [info.file for info in ds.episodes]
            assert set(kept) >= intact and not set(kept) & set(dropped)
            for i, name in enumerate(kept):
                _assert_episode(ds, i, written["episodes"][name])
        finally:
            shutil.rmtree(data.parent)

    check()


@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_writing_after_a_repair_never_overwrites_an_episode(written, examples):
    """Episodes deleted or damaged, repaired away, and then more episodes added: no new episode takes the name of a
    file in the dataset (listed, or moved to damaged/), and all episodes, old and new, read as written."""

    @settings(max_examples=examples)
    @given(st.lists(st.sampled_from(written["names"]), unique=True, max_size=3), st.booleans(), st.integers(1, 3))
    def check(deleted, truncate, added):
        data = _copy(written)
        try:
            for name in deleted:
                (data / EPISODES / name).unlink()
                if truncate:  # damaged: repair moves it to damaged/
                    (data / EPISODES / name).write_bytes((written["data"] / EPISODES / name).read_bytes()[:100])
            repair_dataset(data)
            there = {f.name for f in data.glob("*/ep_*.npz")}
            rng = np.random.default_rng(len(deleted))
            new = {}
            with DatasetWriter(data, "Toy-v0", SHAPE, SPACE) as writer:
                for _ in range(added):
                    ep = {"frames": rng.integers(0, 256, (4, *SHAPE), dtype=np.uint8),
                          "actions": rng.integers(0, 4, 3), "rewards": np.ones(3, np.float32),
                          "terminated": np.array([False, False, True]), "truncated": np.zeros(3, bool)}
                    new[writer.add_episode(**ep).file] = ep
            assert not set(new) & there
            ds = EpisodeDataset(data)
            assert [info.file for info in ds.episodes] == [n for n in written["names"] if n not in deleted] + list(new)
            for i, info in enumerate(ds.episodes):
                _assert_episode(ds, i, new.get(info.file) or written["episodes"][info.file])
        finally:
            shutil.rmtree(data.parent)

    check()
