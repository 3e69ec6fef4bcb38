"""dreamworld: learn a world model of a game, then play, train and evaluate inside the dream."""

__version__ = "0.1.0"
