"""Property-based tests of the command line (hypothesis): a bad value for any flag of `collect`, `train`,
`evaluate`, `play` and `demo` (negative, zero where a count needs one, huge, NaN and infinity, not a number at all, a
file where a directory belongs, a missing directory, a path under a file, an empty path, a directory without
permission) stops the command before it runs: exit code 2, one line on stderr naming the flag, nothing created.

The flags are read off the commands' dataclasses (nested ones included), so a new flag is fuzzed too. The commands
run in-process with their runners replaced by a recorder (the property is about the layer that parses and checks
flags; a runner that ran would be a failure); two cases go through a real subprocess. 200 examples a command
(1,000 with -m slow).
"""

import dataclasses
import os
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import strategies
from hypothesis import given, settings
from hypothesis import strategies as st

import dreamworld.cli.main as cli_main
from dreamworld.cli.data import CollectArgs
from dreamworld.cli.demo import DemoArgs
from dreamworld.cli.model import EvaluateArgs, TrainArgs
from dreamworld.cli.play import PlayArgs

ROOT_USER = os.geteuid() == 0  # root may write anywhere: no directory is without permission for it

# {command: (the dataclass it parses into, made with placeholder required values; good flags, {root} filled in)}
COMMANDS = {
    "collect": (CollectArgs(), {"--out": "{root}/new"}),
    "train": (TrainArgs(data="d", out="o"), {"--data": "{root}/data", "--out": "{root}/new"}),
    "evaluate": (EvaluateArgs(checkpoint="c", data="d"),
                 {"--checkpoint": "{root}/run", "--data": "{root}/data", "--out": "{root}/new"}),
    "play": (PlayArgs(), {"--checkpoint": "{root}/run"}),
    "demo": (DemoArgs(), {"--out": "{root}/new"}),
}

# What the test holds bad beyond what is bad for every number (negative, huge, NaN, infinite, not a number)
ZERO_IS_BAD = {"steps", "num_envs", "size", "threads", "batch_size", "sequence_frames", "log_every", "horizon",
               "samples", "closed_loop_steps", "eval_samples", "random_steps", "train_steps", "agent_steps",
               "agent_envs", "episodes", "video_frames", "frames", "scale", "record_scale", "termination_hidden",
               "termination_channels", "tokenizer_channels", "dynamics_size", "episode_max_steps", "minutes",
               "train_minutes", "agent_minutes", "lr", "checkpoint_seconds", "eval_seconds", "grad_clip"}
ALLOCATES = {"num_envs", "agent_envs", "size", "threads", "scale", "record_scale"}  # 100,000 of them is too many
SHARES = {"epsilon", "holdout", "share", "context_noise"}  # and every *_share: above 1 is bad
TUPLES = {"size": ["64", "64"], "termination_channels": ["16", "32", "32"], "tokenizer_channels": ["32", "64", "128"],
          "dynamics_size": ["128", "2", "2"]}  # good values; one item goes bad
OUT_DIRS, IN_DIRS, OUT_FILES = {"out", "save_to", "recordings"}, {"data", "checkpoint", "agent"}, {"record",
                                                                                                    "screenshot"}
INT_JUNK = ["nan", "NaN", "inf", "-inf", "1.5", "1e3", "x", "", "0x10", "1_000_000_000_000", "99999999999999999999"]
FLOAT_JUNK = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "x", ""]


def _flags(cls, prefix=""):
    """(flag, field name, type) of every field of the dataclass `cls` that takes a value: nested dataclasses are
    walked (with their prefix unless tyro.conf.OmitArgPrefixes or tyro.conf.arg(name="")), booleans and choices
    left out."""
    import tyro

    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        hint, omit = hints[f.name], False
        if typing.get_origin(hint) is typing.Annotated:
            omit = any(m is tyro.conf.OmitArgPrefixes or getattr(m, "name", None) == ""
                       for m in typing.get_args(hint)[1:])
            hint = typing.get_args(hint)[0]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
            hint = args[0]  # X | None
        if dataclasses.is_dataclass(hint):
            yield from _flags(hint, prefix if omit else f"{prefix}{f.name}.")
        elif hint in (int, float, str) or typing.get_origin(hint) is tuple:
            yield f"--{prefix}{f.name.replace('_', '-')}", f.name, hint


def _numbers(name: str, kind) -> st.SearchStrategy[str]:
    """Values no flag `name` of type `kind` (int or float) takes, as command-line text."""
    if kind is int:
        bad = [st.integers(max_value=-1), st.integers(2**31, 10**30), st.sampled_from(INT_JUNK)]
        bad += [st.just(0)] if name in ZERO_IS_BAD else []
        bad += [st.integers(100_000, 2**31 - 1)] if name in ALLOCATES else []
    else:
        bad = [st.floats(max_value=-1e-9, allow_infinity=False), st.floats(1e12, 1e308), st.sampled_from(FLOAT_JUNK)]
        bad += [st.sampled_from([0.0, -0.0])] if name in ZERO_IS_BAD else []
        bad += [st.floats(1.0001, 1e6)] if name in SHARES or name.endswith("_share") else []
    return st.one_of(bad).map(str)


def _paths(root: Path, name: str) -> st.SearchStrategy[str]:
    """Paths the flag `name` cannot use: a file for a directory, a directory for a file, a path under a file, a
    missing directory to read, an empty path, a directory without permission."""
    file, under_file = str(root / "a_file"), str(root / "a_file" / "sub")
    if name in OUT_DIRS:
        bad = [file, under_file, ""] + ([] if ROOT_USER else [str(root / "locked"), str(root / "locked" / "new")])
    elif name in IN_DIRS:
        bad = [file, str(root / "missing"), under_file, ""] + ([] if ROOT_USER else [str(root / "unreadable")])
    else:  # a file to write
        bad = [str(root / "a_dir.png"), str(root / "a_file" / "x.png"), ""]
        bad += [str(root / "clip.txt")] if name == "record" else []
        bad += [] if ROOT_USER else [str(root / "locked" / "x.png")]
    return st.sampled_from(bad)


def bad_tokens(root: Path, flag: str, name: str, kind) -> st.SearchStrategy[list[str]] | None:
    """argv tokens giving `flag` a bad value, or None for a flag the property leaves out (free text)."""
    if typing.get_origin(kind) is tuple:
        good = TUPLES[name]
        return st.tuples(st.integers(0, len(good) - 1), _numbers(name, int)).map(
            lambda iv: [flag, *good[: iv[0]], iv[1], *good[iv[0] + 1 :]])
    if kind in (int, float):
        value = _numbers(name, kind)
    elif name in OUT_DIRS | IN_DIRS | OUT_FILES:
        value = _paths(root, name)
    elif name == "device":
        value = st.sampled_from(["gpu", "cuda:x", "", "tpu", "CPU"] + ([] if _has_cuda() else ["cuda", "cuda:0"]))
    elif name == "policy":
        value = st.sampled_from(["randomly", "", str(root / "missing"), str(root / "a_file")])
    else:
        return None
    return st.tuples(value, st.booleans()).map(lambda vb: [f"{flag}={vb[0]}"] if vb[1] else [flag, vb[0]])


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A directory holding a file, an empty data/ and run/, a directory named like a file, directories without
    write or read permission, and the working directory cwd/; the commands' runners replaced by a recorder."""
    (tmp_path / "a_file").write_text("x")
    for name in ("data", "run", "a_dir.png", "locked", "unreadable", "cwd"):
        (tmp_path / name).mkdir()
    (tmp_path / "locked").chmod(0o500)
    (tmp_path / "unreadable").chmod(0o000)
    monkeypatch.chdir(tmp_path / "cwd")
    calls = []
    monkeypatch.setattr(cli_main, "COMMANDS", {name: (cls, calls.append)
                                               for name, (cls, _) in cli_main.COMMANDS.items()})
    yield tmp_path, calls
    (tmp_path / "locked").chmod(0o700)
    (tmp_path / "unreadable").chmod(0o700)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.parent.name not in ("locked", "unreadable")}


def _argv(command: str, root: Path, tokens: list[str] = ()) -> list[str]:
    """`command`, its good flags (less the one `tokens` gives) and `tokens`."""
    given = tokens[0].split("=")[0] if tokens else None
    good = [t for flag, value in COMMANDS[command][1].items() if flag != given for t in (flag, value.format(root=root))]
    return [command, *good, *tokens]


def _fuzzed(command: str, root: Path) -> list[tuple]:
    """(flag, strategy of bad tokens) for each flag of `command` the property fuzzes."""
    out = []
    for flag, name, kind in _flags(type(COMMANDS[command][0])):
        strategy = bad_tokens(root, flag, name, kind)
        if strategy is not None:
            out.append((flag, strategy))
    return out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_takes_its_default(scratch, capsys, command):
    """Each flag given its default value is accepted: the checks refuse bad values only."""
    from dreamworld.cli import checks

    root, calls = scratch
    tried = 0
    for flag, name, default in checks._fields(COMMANDS[command][0]):
        if default is None or isinstance(default, bool) or name in IN_DIRS | {"out"}:
            continue
        tokens = [flag, *map(str, default)] if isinstance(default, tuple) else [flag, str(default)]
        cli_main.main(_argv(command, root, tokens))
        assert capsys.readouterr().err == "" and len(calls) == 1, (flag, default)
        calls.clear()
        tried += 1
    assert tried >= {"collect": 6, "train": 35, "evaluate": 7, "play": 10, "demo": 12}[command]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("examples", strategies.EXAMPLES)
def test_bad_flag_values_exit_2_naming_the_flag(scratch, capsys, command, examples):
    """Property: `dreamworld COMMAND <good flags> FLAG BAD` exits with code 2, prints exactly one line on stderr,
    "dreamworld: error: ..." naming FLAG, never runs the command, and creates no file or directory."""
    root, calls = scratch
    fuzzed = _fuzzed(command, root)
    before = _tree(root)

    @settings(max_examples=examples)
    @given(st.sampled_from(fuzzed).flatmap(lambda fs: st.tuples(st.just(fs[0]), fs[1])))
    def check(flag_tokens):
        flag, tokens = flag_tokens
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            cli_main.main(_argv(command, root, tokens))
        err = capsys.readouterr().err
        assert exit_.value.code == 2, (tokens, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dreamworld: error: "), err
        assert re.search(re.escape(flag) + r"(?![\w-])", lines[0]) and "unrecognized" not in lines[0], (tokens, err)
        assert calls == [], tokens
        assert _tree(root) == before, tokens

    check()


@pytest.mark.parametrize("argv, flag", [
    (["collect", "--out", "{root}/new", "--num-envs", "0"], "--num-envs"),
    (["evaluate", "--checkpoint", "{root}", "--data", "{root}", "--out", "{root}/a_file"], "--out"),
])
def test_bad_flags_through_a_real_process(tmp_path, argv, flag):
    """The same through `python -m dreamworld`: exit 2, one line naming the flag, nothing created."""
    (tmp_path / "a_file").write_text("x")
    cmd = [sys.executable, "-m", "dreamworld", *(token.format(root=tmp_path) for token in argv)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
