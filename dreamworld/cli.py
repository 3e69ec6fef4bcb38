"""The `dreamworld` command: one subcommand per job, each configured by a typed dataclass."""

from __future__ import annotations

import sys

import tyro

from .cli_agent import LoopArgs, TrainAgentArgs, run_loop, run_train_agent
from .cli_data import CollectArgs, DatasetArgs, run_collect, run_dataset
from .cli_demo import DemoArgs, run_demo_command
from .cli_model import EvaluateArgs, TrainArgs, run_evaluate, run_train
from .cli_play import PlayArgs, run_play

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
    from dreamworld.envs import DatasetError

    from .checkpoint import CheckpointError
    from .phases import TrainingDiverged
    from .precision import flush_denormals

    args = tyro.extras.subcommand_cli_from_dict({name: cls for name, (cls, _) in COMMANDS.items()},
                                                prog="dreamworld", args=argv)
    runner = next(run for cls, run in COMMANDS.values() if isinstance(args, cls))
    flush_denormals()
    try:
        runner(args)
    except (DatasetError, CheckpointError, TrainingDiverged, ValueError, ImportError, FileNotFoundError) as e:
        print(f"dreamworld: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
