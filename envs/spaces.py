"""Action and observation spaces to and from JSON, so datasets and checkpoints describe their env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def space_to_json(space: gym.Space) -> dict:
    """A JSON-able description of a Discrete or Box space."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": space.low.tolist(), "high": space.high.tolist()}
    raise TypeError(f"unsupported space {space}: dreamworld handles Discrete and Box spaces")


def space_from_json(data: dict) -> gym.Space:
    """The inverse of `space_to_json`."""
    kind = data.get("type")
    if kind == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        low = np.asarray(data["low"], dtype=dtype)
        high = np.asarray(data["high"], dtype=dtype)
        return gym.spaces.Box(low, high, tuple(data["shape"]), dtype)
    raise ValueError(f"unknown space description {data!r}: expected type Discrete or Box")


def action_array_spec(space: gym.Space) -> tuple[tuple[int, ...], np.dtype]:
    """Per-step shape and dtype used to store actions of `space` in a dataset."""
    if isinstance(space, gym.spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape), np.dtype(np.float32)
    raise TypeError(f"unsupported action space {space}: dreamworld handles Discrete and Box spaces")
