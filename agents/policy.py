"""`Policy`: a trained actor-critic that acts on observations; saved like a world model (config.json +
model.safetensors, written atomically, never pickled) and loaded with `dreamworld.agents.load(AGENT)`."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from dreamworld.io import (
    build,
    check_fields,
    check_state,
    read_config_json,
    read_safetensors,
    run_file,
    write_json,
    write_safetensors,
)

from .networks import ActorCritic, NetworkConfig

FORMAT = "dreamworld-agent"
VERSION = 1
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def obs_space_to_json(space: gym.spaces.Box) -> dict:
    """Shape, dtype and the overall bounds of an observation space (per-element bounds are not needed)."""
    return {"shape": list(space.shape), "dtype": str(space.dtype), "low": float(np.min(space.low)),
            "high": float(np.max(space.high))}


def action_space_to_json(space: gym.Space) -> dict:
    """A Discrete or Box action space as JSON."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    return {"type": "Box", "shape": list(space.shape), "low": space.low.reshape(-1).tolist(),
            "high": space.high.reshape(-1).tolist()}


def space_from_json(data: dict) -> gym.Space:
    """Inverse of `obs_space_to_json` / `action_space_to_json`."""
    if data.get("type") == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data["start"]))
    shape = tuple(data["shape"])
    if data.get("type") == "Box":
        return gym.spaces.Box(np.asarray(data["low"], np.float32).reshape(shape),
                              np.asarray(data["high"], np.float32).reshape(shape), shape, np.float32)
    return gym.spaces.Box(data["low"], data["high"], shape, np.dtype(data["dtype"]))


class Policy:
    """Acts on batches of observations: `policy.act(obs (N, *obs_shape), deterministic=False) -> actions (N, ...)`.

    `config` records what the policy expects: obs_type (a dream's kind, `dreamworld.dream.observations.OBS_TYPES`:
    "pixels", "latent": FSQ codes of the world model in `config["checkpoint"]`, "objects": object vectors of the
    built-in game env_id; or "vector" for any other array), env_id (the real game), the spaces, the algorithm and
    training info. The policy acts on exactly what it observes; whoever plays it from frames encodes them
    (`dreamworld.dream.observations`: `FrameEncoder` for latent codes, `reads_frames` for object vectors).
    """

    def __init__(self, net: ActorCritic, obs_type: str, env_id: str = "", checkpoint: str | None = None,
                 algo: str = "", info: dict | None = None):
        if not isinstance(obs_type, str) or not obs_type:
            raise ValueError(f"obs_type must name what the policy observes (e.g. 'pixels'), got {obs_type!r}")
        self.net = net
        self.config = {"obs_type": obs_type, "env_id": env_id, "checkpoint": checkpoint, "algo": algo,
                       "network": net.cfg.to_dict(), "observation_space": obs_space_to_json(net.obs_space),
                       "action_space": action_space_to_json(net.action_space), "info": info or {}}

    @property
    def obs_type(self) -> str:
        """"pixels", "latent", "objects" or "vector"."""
        return self.config["obs_type"]

    @property
    def env_id(self) -> str:
        """The real env the policy was trained for."""
        return self.config["env_id"]

    @property
    def observation_space(self) -> gym.spaces.Box:
        """The space of one observation."""
        return self.net.obs_space

    @property
    def action_space(self) -> gym.Space:
        """The space of one action."""
        return self.net.action_space

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Actions (N, ...) for observations (N, *obs_shape): sampled, or the most likely ones when
        `deterministic`. Discrete actions are int64, Box actions float32 inside the bounds."""
        dist = self.net.dist(self.net.obs_tensor(obs))
        return self.net.env_actions(self.net.mode(dist) if deterministic else dist.sample())

    def save(self, path: str | os.PathLike, info: dict | None = None) -> Path:
        """Write config.json and model.safetensors into the directory `path` (atomically); `info` (e.g. returns)
        is stored in the config."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if info is not None:
            self.config["info"] = info
        write_safetensors(path / WEIGHTS, self.net.state_dict(), metadata={"format": FORMAT})
        write_json(path / CONFIG, {"format": FORMAT, "version": VERSION, **self.config})
        return path


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Policy:
    """Load the policy saved in the directory `path` onto `device`, ready to act."""
    path = Path(path)
    file = path / CONFIG
    data = read_config_json(file, FORMAT, VERSION, "agent",
                            "not an agent directory (train one with dreamworld train-agent)")
    check_fields(NetworkConfig, data.get("network", {}), file, "network")
    net = build(lambda d: ActorCritic(space_from_json(d["observation_space"]), space_from_json(d["action_space"]),
                                      NetworkConfig(**{"token_width": 0} | d["network"])),  # saved before token_width
                data, file)
    state = read_safetensors(run_file(path, WEIGHTS))
    check_state(path / WEIGHTS, state, net.state_dict())
    net.load_state_dict(state)
    return build(lambda d: Policy(net.to(device).eval(), d["obs_type"], d.get("env_id", ""), d.get("checkpoint"),
                                  d.get("algo", ""), d.get("info", {})), data, file)
