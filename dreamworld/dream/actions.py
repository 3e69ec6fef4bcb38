"""Actions given to a dream: checked against its action space, as arrays, shown as text."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def action_array(actions, space: gym.Space) -> np.ndarray:
    """`np.asarray(actions)`, or a ValueError naming the action and `space` where numpy cannot make one array of
    it (ragged lists)."""
    try:
        return np.asarray(actions)
    except (ValueError, TypeError) as e:
        raise ValueError(f"action {show_action(actions)} is outside {space}: it is not an array ({e})") from None


def show_action(action) -> str:
    """An action as error messages show it: its values as a list (`tolist`), cut after 200 characters."""
    try:
        text = str(np.asarray(action).tolist())
    except (ValueError, TypeError):
        text = repr(action)
    return text if len(text) <= 200 else text[:200] + "..."


def check_actions(space: gym.Space, actions, num_envs: int) -> np.ndarray:
    """`actions` as an array (num_envs, *space.shape) of values inside `space`, or a ValueError naming the
    first bad one ("action 7 is outside Discrete(3)")."""
    arr = action_array(actions, space)
    where = "" if num_envs == 1 else " (dream {})"
    shown = arr[0] if num_envs == 1 and arr.shape[:1] == (1,) else arr  # what a wrong dtype's message shows
    if arr.shape != (num_envs, *space.shape):
        raise ValueError(f"actions {show_action(arr)} of shape {arr.shape} do not fit {num_envs} dream(s) of {space}: "
                         f"expected an array of shape {(num_envs, *space.shape)}")
    if isinstance(space, gym.spaces.Discrete):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"action {show_action(shown)} is outside {space}: Discrete actions are integers, got "
                             f"{arr.dtype}")
        inside = (arr >= space.start) & (arr < space.start + space.n)  # (num_envs,)
    else:
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"action {show_action(shown)} is outside {space}: Box actions are numbers, got "
                             f"{arr.dtype}")
        flat = arr.reshape(num_envs, -1)  # (num_envs, A)
        low, high = space.low.reshape(1, -1), space.high.reshape(1, -1)  # (1, A) each
        inside = (np.isfinite(flat) & (flat >= low) & (flat <= high)).all(axis=1)  # (num_envs,)
    if not inside.all():
        i = int(np.flatnonzero(~inside)[0])
        raise ValueError(f"action {show_action(arr[i])} is outside {space}" + where.format(i))
    return arr
