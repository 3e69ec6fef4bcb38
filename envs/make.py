"""`make_env`: one entry point for built-in games, any Gymnasium pixel env, Atari (100k protocol) and crafter.

Every env it returns observes uint8 H x W x 3 frames (64 x 64 unless `size` says otherwise) and keeps its
action space (Discrete stays Discrete, Box stays Box) and its key map.
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np

from .keymaps import keys_to_action_for
from .pixels import AtariFrameSkip, PixelObservation

BUILTIN_PREFIX = "dreamworld/"


def _require(module: str, extra: str, what: str) -> None:
    """Raise an ImportError naming the extra to install when `module` is missing."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the '{extra}' extra: pip install 'dreamworld[{extra}]'")


def builtin_ids() -> list[str]:
    """Ids of the built-in games, e.g. ['dreamworld/Bricks-v0', ...]."""
    from .games import GAMES

    return [f"{BUILTIN_PREFIX}{name}-v0" for name in GAMES]


def _resolve_builtin(env_id: str) -> str:
    """Accept 'Bricks', 'Bricks-v0' or 'dreamworld/Bricks-v0' for a built-in game."""
    for full in builtin_ids():
        short = full[len(BUILTIN_PREFIX) :]
        if env_id in (full, short, short.removesuffix("-v0")):
            return full
    return env_id


def make_env(
    env_id: str,
    *,
    size: tuple[int, int] = (64, 64),
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
    **options,
) -> gym.Env:
    """Make `env_id` as a pixel env observing uint8 (size[0], size[1], 3) frames.

    `env_id` is a built-in game ('Bricks' or 'dreamworld/Bricks-v0'), an Atari id ('ALE/Pong-v5'; the
    Atari 100k protocol is applied), 'crafter' / 'crafter:Reward-v1', or any registered Gymnasium id whose
    env renders rgb_array frames (classic control, Box2D, ...). Extra `options` go to the env's constructor.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    env_id = _resolve_builtin(env_id)
    if env_id in builtin_ids():
        env = gym.make(env_id, render_mode=render_mode, **options)
        if tuple(size) != env.observation_space.shape[:2]:
            env = PixelObservation(env, size=size)
    elif env_id.startswith("crafter"):
        from .crafter_env import make_crafter

        _require("crafter", "crafter", "crafter")
        env = make_crafter(env_id, size=size, render_mode=render_mode, **options)
    elif env_id.startswith("ALE/"):
        env = _make_atari(env_id, size=size, render_mode=render_mode, **options)
    else:
        env = _make_gymnasium(env_id, size=size, render_mode=render_mode, **options)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    return env


def _spec_or_error(env_id: str) -> gym.envs.registration.EnvSpec:
    """Look up `env_id` in the Gymnasium registry, with an error listing what to do when it is unknown."""
    if env_id.startswith("ALE/"):
        _require("ale_py", "atari", "ALE (Atari) envs")
        import ale_py

        gym.register_envs(ale_py)
    try:
        return gym.spec(env_id)
    except gym.error.Error as e:
        raise ValueError(
            f"unknown env id {env_id!r}: use a built-in game ({', '.join(builtin_ids())}), an Atari id such as "
            f"'ALE/Pong-v5', 'crafter', or any id registered with Gymnasium ({e})"
        ) from None


def _make_atari(env_id: str, *, size, render_mode, noop_max: int = 30, **options) -> gym.Env:
    """ALE env under the Atari 100k protocol: frame skip 4 with max-pooling of the last two frames, sticky
    actions 0.25, a 108k-frame cap, the minimal action set, up to `noop_max` no-ops at reset."""
    _spec_or_error(env_id)
    kwargs = dict(frameskip=1, repeat_action_probability=0.25, full_action_space=False,
                  max_num_frames_per_episode=108_000)
    kwargs.update(options)
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    env = AtariFrameSkip(env, skip=4, noop_max=noop_max)
    return PixelObservation(env, size=size)


def _make_gymnasium(env_id: str, *, size, render_mode, **options) -> gym.Env:
    """Any registered Gymnasium env; non-image observations are replaced by the rgb_array render."""
    spec = _spec_or_error(env_id)
    try:  # importing the env's module (load_env_creator) may be what finds a dependency missing
        creator = spec.entry_point if callable(spec.entry_point) else gym.envs.registration.load_env_creator(
            spec.entry_point)
        renders_rgb = "rgb_array" in getattr(creator, "metadata", {}).get("render_modes", [])
        env = gym.make(spec, **({"render_mode": "rgb_array"} if renders_rgb else {}), **options)
    except gym.error.DependencyNotInstalled as e:
        extra = "box2d" if "box2d" in str(e).lower() else None
        hint = f" pip install 'dreamworld[{extra}]'" if extra else ""
        raise ImportError(f"{env_id} has a missing dependency: {e}.{hint}") from None
    obs_space = env.observation_space
    space_is_image = (
        isinstance(obs_space, gym.spaces.Box) and obs_space.dtype == np.uint8 and len(obs_space.shape) == 3
        and obs_space.shape[-1] == 3
    )
    if not space_is_image and not renders_rgb:
        env.close()
        raise ValueError(f"{env_id} neither observes RGB images nor renders rgb_array frames: not a pixel env")
    if not space_is_image:
        env = gym.wrappers.AddRenderObservation(env, render_only=True)
    env = PixelObservation(env, size=size, keys_to_action=keys_to_action_for(env_id, env.action_space))
    if render_mode == "human":
        env = gym.wrappers.HumanRendering(env)
    return env


def env_render_fps(env_id: str, default: int = 30) -> int:
    """The env's metadata render_fps (for videos and play), or `default` when the env does not say or is absent."""
    try:
        env = make_env(env_id)
    except (ImportError, ValueError):
        return default
    fps = env.metadata.get("render_fps") or default
    env.close()
    return int(fps)
