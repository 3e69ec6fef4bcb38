"""The `dreamworld` command: one subcommand per job, each configured by a typed dataclass."""

from __future__ import annotations

import contextlib
import sys

import tyro

from dreamworld.cli import checks
from dreamworld.cli.agent import LoopArgs, TrainAgentArgs, run_loop, run_train_agent
from dreamworld.cli.data import CollectArgs, DatasetArgs, run_collect, run_dataset
from dreamworld.cli.demo import DemoArgs, run_demo_command
from dreamworld.cli.model import EvaluateArgs, TrainArgs, run_evaluate, run_train
from dreamworld.cli.play import PlayArgs, run_play

COMMANDS = {
    "collect": (CollectArgs, run_collect),
    "dataset": (DatasetArgs, run_dataset),
    "train": (TrainArgs, run_train),
    "evaluate": (EvaluateArgs, run_evaluate),
    "play": (PlayArgs, run_play),
    "train-agent": (TrainAgentArgs, run_train_agent),
    "loop": (LoopArgs, run_loop),
    "demo": (DemoArgs, run_demo_command),
}


def _fail(message: str) -> None:
    """Print `message` as one line on stderr and exit with code 2 (a usage error)."""
    print(f"dreamworld: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)


def _flag_name(argument) -> str:
    """How the command line spells a tyro argument: --flag, or the positional's name."""
    lowered = argument.lowered
    return str(lowered.metavar) if argument.is_positional() else "/".join(lowered.name_or_flags)


def _one_line_parse_errors(event) -> None:
    """tyro's parse-error hook: a value tyro cannot parse, a missing or unknown flag, a choice not offered, each as
    one line naming the flag (tyro draws a box over many lines); other events get tyro's own message."""
    from tyro import _errors

    argument = getattr(event, "argument", None)
    if isinstance(event, _errors.InstantiationFailure):
        _fail(f"{_flag_name(argument)}: {event.message}" if argument is not None else event.message)
    elif isinstance(event, _errors.InvalidChoice):
        _fail(f"{_flag_name(argument)} {event.value!r}: choose one of {', '.join(event.choices)}")
    elif isinstance(event, _errors.BadValue):
        _fail(f"{_flag_name(argument)}: needs {getattr(argument.lowered, 'nargs', 1)} value(s)"
              + (f", got {event.offending_value!r}" if event.offending_value else ""))
    elif isinstance(event, _errors.MissingArgs):
        _fail("missing " + ", ".join(_flag_name(a.arg) for a in event.missing_arguments) + f" (see {event.prog} "
              "--help)")
    elif isinstance(event, _errors.UnrecognizedArgs):
        _fail(f"unrecognized arguments {' '.join(event.tokens)} (see {event.prog} --help)")


def _parse_errors_hook():
    """The context in which tyro reports parse errors in one line (tyro's own boxes where it has no hook)."""
    try:
        from tyro import _errors

        return _errors.on_parse_error(_one_line_parse_errors)
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


def parse(argv: list[str] | None = None):
    """The subcommand's arguments (a dataclass), checked (`checks.check`): usage errors exit 2 with one line."""
    with _parse_errors_hook():
        args = tyro.extras.subcommand_cli_from_dict({name: cls for name, (cls, _) in COMMANDS.items()},
                                                    prog="dreamworld", args=argv)
    try:
        checks.check(args)
    except checks.FlagError as e:
        _fail(str(e))
    return args


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen subcommand; user errors exit with a one-line message."""
    from dreamworld.checkpoint import CheckpointError
    from dreamworld.envs import DatasetError
    from dreamworld.model.precision import flush_denormals
    from dreamworld.train.phases import TrainingDiverged

    args = parse(argv)
    runner = next(run for cls, run in COMMANDS.values() if isinstance(args, cls))
    flush_denormals()
    try:
        runner(args)
    except (DatasetError, CheckpointError, TrainingDiverged, ValueError, ImportError, FileNotFoundError) as e:
        _fail(str(e))
