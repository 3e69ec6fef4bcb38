"""dreamworld: learn a world model of a game, then play, train and evaluate inside the dream."""

__version__ = "0.1.0"


def load(run, device="cpu"):
    """Load the world model saved in the run directory `run`, ready to imagine on `device`."""
    from .checkpoint import load as _load

    return _load(run, device)
