"""Key maps (tuples of pygame key codes -> action) for Gymnasium envs that ship without one.

Letters use their ASCII codes, which are also pygame's key codes (pygame.K_a == ord("a")).
Continuous (Box) action spaces map keys to action vectors. There is no entry for "no key" (gymnasium's `play`
rejects empty tuples): with no key pressed the player sends the env's no-op, `noop_action_for`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

A, D, W, S, SPACE = (ord(c) for c in "adws ")

_DISCRETE = {
    "CartPole": {(A,): 0, (D,): 1},
    "MountainCar": {(A,): 0, (D,): 2},
    "Acrobot": {(A,): 0, (D,): 2},
    "LunarLander": {(A,): 1, (W,): 2, (D,): 3},
}

_CONTINUOUS = {
    "CarRacing": {(A,): [-1, 0, 0], (D,): [1, 0, 0], (W,): [0, 1, 0], (S,): [0, 0, 0.8],
                  (A, W): [-1, 1, 0], (D, W): [1, 1, 0], (A, S): [-1, 0, 0.8], (D, S): [1, 0, 0.8]},
    "Pendulum": {(A,): [-2.0], (D,): [2.0]},
    "MountainCarContinuous": {(A,): [-1.0], (D,): [1.0]},
}


def keys_to_action_for(env_id: str, action_space: gym.Space | None = None) -> dict | None:
    """The key map for `env_id` (matched on its name without namespace or version), or, for any Discrete
    space of up to 10 actions, digits 0-9 pick the action. None when unknown."""
    name = env_id.split("/")[-1].split("-v")[0]
    if name in _DISCRETE:
        return dict(_DISCRETE[name])
    if name in _CONTINUOUS:
        return {keys: np.asarray(v, dtype=np.float32) for keys, v in _CONTINUOUS[name].items()}
    if isinstance(action_space, gym.spaces.Discrete) and action_space.n <= 10:
        start = int(action_space.start)
        return {(ord(str(i)),): start + i for i in range(1, int(action_space.n))}
    return None


_NOOPS = {"MountainCar": 1, "Acrobot": 1}


def noop_action_for(env_id: str, action_space: gym.Space):
    """The action sent while no key is pressed: zeros for Box spaces, the idle action for Discrete ones."""
    if isinstance(action_space, gym.spaces.Box):
        return np.zeros(action_space.shape, dtype=action_space.dtype)
    name = env_id.split("/")[-1].split("-v")[0]
    return _NOOPS.get(name, int(getattr(action_space, "start", 0)))
