"""dreamworld: learn a world model of a game, then play, train and evaluate inside the dream."""

__version__ = "0.1.0"

DREAM_ID = "dreamworld/Dream-v0"
"""Gymnasium id of a world model's dream: `gymnasium.make(DREAM_ID, checkpoint=RUN)` or `make_vec(...)`."""


def load(run, device="cpu"):
    """Load the world model saved in the run directory `run`, ready to imagine on `device`."""
    from dreamworld.checkpoint import load as _load

    return _load(run, device)


def register_envs() -> None:
    """Register `dreamworld/Dream-v0` (env and native vector env) and the built-in games (`dreamworld/Catch-v0`,
    ...) with Gymnasium; ids already there are kept."""
    import gymnasium

    from .envs.games import register_games

    if DREAM_ID not in gymnasium.registry:
        gymnasium.register(DREAM_ID, entry_point="dreamworld.dream.env:DreamEnv",
                           vector_entry_point="dreamworld.dream.vector_env:DreamVectorEnv")
    register_games()


register_envs()
