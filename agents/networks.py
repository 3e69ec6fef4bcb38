"""Actor and critic networks: a CNN for uint8 image observations, an MLP for everything else (latent codes
(N_tokens, dims), state vectors); a categorical head for Discrete actions, a Gaussian one for Box actions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal


@dataclass
class NetworkConfig:
    """Sizes of the actor and critic (each has its own encoder)."""

    hidden: int = 256
    """width of the MLP layers and of the features the heads read"""
    layers: int = 2
    """MLP layers of the encoder for non-image observations"""
    channels: list[int] = field(default_factory=lambda: [32, 64, 64, 64])
    """channels of the stride-2 4x4 convolutions of the image encoder"""
    token_width: int = 64
    """for (tokens, dims) observations (latent codes): width of the MLP shared by every token, which sees the
    token's code and its place in the grid, before the encoder's MLP reads all tokens (0: flatten the codes)"""

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)


def is_image(space: gym.Space) -> bool:
    """True for uint8 (H, W, C) Box observations, which go through the CNN."""
    return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
            and space.shape[-1] in (1, 3, 4))


def check_spaces(obs_space: gym.Space, action_space: gym.Space) -> None:
    """Raise a clear error for spaces the networks do not handle."""
    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(f"observation space {obs_space} is not a Box: agents handle image and array observations; "
                         "flatten the observation with gymnasium.wrappers.FlattenObservation")
    if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise ValueError(f"action space {action_space} is neither Discrete nor Box: agents handle those two")


class Encoder(nn.Module):
    """Observations (N, *obs_shape) -> features (N, hidden)."""

    def __init__(self, obs_space: gym.spaces.Box, cfg: NetworkConfig):
        super().__init__()
        self.image = is_image(obs_space)
        if self.image:
            layers, c_in = [], obs_space.shape[-1]
            for c in cfg.channels:
                layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.SiLU()]
                c_in = c
            self.conv = nn.Sequential(*layers, nn.Flatten())
            with torch.no_grad():
                flat = self.conv(torch.zeros(1, obs_space.shape[-1], *obs_space.shape[:2])).shape[1]
            self.mlp = nn.Sequential(nn.Linear(flat, cfg.hidden), nn.LayerNorm(cfg.hidden), nn.SiLU())
        else:
            self.tokens = None
            if cfg.token_width > 0 and len(obs_space.shape) == 2:
                self.tokens = TokenEncoder(*obs_space.shape, cfg.token_width)
            layers = []
            d_in = int(np.prod(obs_space.shape)) if self.tokens is None else obs_space.shape[0] * cfg.token_width
            for _ in range(cfg.layers):
                layers += [nn.Linear(d_in, cfg.hidden), nn.LayerNorm(cfg.hidden), nn.SiLU()]
                d_in = cfg.hidden
            self.mlp = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Features (N, hidden) of observations (N, *obs_shape) (uint8 images are scaled to [-0.5, 0.5])."""
        if self.image:
            x = obs.float().permute(0, 3, 1, 2) / 255.0 - 0.5  # (N, C, H, W) viewed from (N, H, W, C)
            # channels-last, the memory order of the frames: oneDNN's fastest layout on the CPU (PPO's forward and
            # backward for 1,024 frames through both 16-32-32 encoders, one thread: 1.15 s against 1.25)
            return self.mlp(self.conv(x.contiguous(memory_format=torch.channels_last)))
        x = obs.float() if self.tokens is None else self.tokens(obs.float())  # (N, tokens, dims or width)
        return self.mlp(x.flatten(1))  # (N, tokens * (dims or width)) -> (N, hidden)


class TokenEncoder(nn.Module):
    """Codes (N, tokens, dims) -> per-token features (N, tokens, width): one MLP shared by all tokens (what a
    code shows is learned once, for every place), with a learned embedding of each token's place added."""

    def __init__(self, tokens: int, dims: int, width: int):
        super().__init__()
        self.inp = nn.Linear(dims, width)
        self.place = nn.Parameter(torch.zeros(tokens, width))
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, width), nn.LayerNorm(width),
                                 nn.SiLU())

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, tokens, dims) -> (N, tokens, width)."""
        return self.mlp(self.inp(codes) + self.place)


class ActorCritic(nn.Module):
    """An actor (policy distribution) and a critic (state value), each with its own encoder.

    Actions inside the network are "raw": Discrete actions as indices 0..n-1, Box actions unclipped Gaussian
    samples. `env_actions` turns them into actions the env accepts (start offset, clipping to the bounds).
    """

    def __init__(self, obs_space: gym.spaces.Box, action_space: gym.Space, cfg: NetworkConfig):
        super().__init__()
        check_spaces(obs_space, action_space)
        self.obs_space, self.action_space, self.cfg = obs_space, action_space, cfg
        self.actor_encoder, self.critic_encoder = Encoder(obs_space, cfg), Encoder(obs_space, cfg)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.actor_head = nn.Linear(cfg.hidden, out)
        self.critic_head = nn.Linear(cfg.hidden, 1)
        nn.init.orthogonal_(self.actor_head.weight, gain=0.01)  # a near-uniform (near-zero mean) first policy
        nn.init.zeros_(self.actor_head.bias)
        nn.init.orthogonal_(self.critic_head.weight, gain=1.0)
        nn.init.zeros_(self.critic_head.bias)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.zeros(out))
            low, high = action_space.low.reshape(-1), action_space.high.reshape(-1)  # (A,) each
            bounded = np.isfinite(low) & np.isfinite(high)
            center, scale = np.where(bounded, (low + high) / 2, 0.0), np.where(bounded, (high - low) / 2, 1.0)
            self.register_buffer("action_center", torch.tensor(center, dtype=torch.float32))  # (A,)
            self.register_buffer("action_scale", torch.tensor(scale, dtype=torch.float32))  # (A,)

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.critic_head.weight.device

    def obs_tensor(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Observations (N, *obs_shape) as a tensor on the network's device, checked against the space."""
        obs = torch.as_tensor(obs, device=self.device)
        if tuple(obs.shape[1:]) != tuple(self.obs_space.shape):
            raise ValueError(f"observations of shape {tuple(obs.shape)} do not fit the policy's observation space "
                             f"{self.obs_space}: pass a batch (N, {', '.join(map(str, self.obs_space.shape))})")
        return obs

    def dist(self, obs: torch.Tensor) -> Distribution:
        """The policy's action distribution for observations (N, *obs_shape); its samples are raw actions."""
        out = self.actor_head(self.actor_encoder(obs))  # (N, n) logits or (N, A) pre-tanh means
        if self.discrete:
            return Categorical(logits=out)
        mean = self.action_center + self.action_scale * torch.tanh(out)  # (N, A)
        std = self.action_scale * torch.exp(self.log_std.clamp(-5.0, 2.0))  # (A,)
        return Independent(Normal(mean, std.expand_as(mean)), 1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values (N,) of observations (N, *obs_shape)."""
        return self.critic_head(self.critic_encoder(obs)).squeeze(-1)

    def mode(self, dist: Distribution) -> torch.Tensor:
        """The most likely raw action of each row of `dist`."""
        return dist.probs.argmax(-1) if self.discrete else dist.mean

    def env_actions(self, raw: torch.Tensor) -> np.ndarray:
        """Raw actions (N, ...) -> actions the env accepts: int64 (N,) for Discrete, float32 (N, *shape) clipped
        to the bounds for Box."""
        if self.discrete:
            return raw.cpu().numpy().astype(np.int64) + int(self.action_space.start)
        low = torch.as_tensor(self.action_space.low.reshape(-1), device=raw.device)
        high = torch.as_tensor(self.action_space.high.reshape(-1), device=raw.device)
        clipped = torch.maximum(torch.minimum(raw, high), low)  # (N, A)
        return clipped.cpu().numpy().astype(np.float32).reshape(len(raw), *self.action_space.shape)
