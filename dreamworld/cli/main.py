"""The `dreamworld` command: one subcommand per job, each configured by a typed dataclass."""

from __future__ import annotations

import sys

import tyro

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


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen subcommand; user errors exit with a one-line message."""
    from dreamworld.checkpoint import CheckpointError
    from dreamworld.envs import DatasetError
    from dreamworld.model.precision import flush_denormals
    from dreamworld.train.phases import TrainingDiverged

    args = tyro.extras.subcommand_cli_from_dict({name: cls for name, (cls, _) in COMMANDS.items()},
                                                prog="dreamworld", args=argv)
    runner = next(run for cls, run in COMMANDS.values() if isinstance(args, cls))
    flush_denormals()
    try:
        runner(args)
    except (DatasetError, CheckpointError, TrainingDiverged, ValueError, ImportError, FileNotFoundError) as e:
        print(f"dreamworld: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
