"""The world model: tokenizer + dynamics (+ termination CNN), and the frame-by-frame imagination loop with a sliding
KV cache."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import gymnasium as gym
import torch
from torch import nn

from dreamworld.envs import space_from_json
from dreamworld.model.dynamics import Dynamics, DynamicsConfig, KVCache
from dreamworld.model.precision import autocast
from dreamworld.model.termination import TerminationConfig, TerminationNet
from dreamworld.model.tokenizer import Tokenizer, TokenizerConfig


@dataclass
class WorldModelConfig:
    """Everything needed to rebuild a world model: module configs and the facts of the env it learned."""

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """frame tokenizer"""
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    """dynamics transformer"""
    termination: TerminationConfig | None = field(default_factory=TerminationConfig)
    """CNN that reads a step's termination off the drawn frames before and after it (termination.py); None reads it
    off the tokens with the dynamics' outcome head (cheaper dreams: no decoding in latent mode; the only kind
    before this field existed, so a config without it means None)"""
    env_id: str = ""
    """the real env this model learned"""
    action_space: dict = field(default_factory=lambda: {"type": "Discrete", "n": 1, "start": 0})
    """the env's action space (dreamworld.envs.space_to_json)"""
    obs_shape: list[int] = field(default_factory=lambda: [64, 64, 3])
    """observation shape (H, W, 3)"""
    render_fps: int = 30
    """the env's metadata render_fps"""
    reward_values: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0])
    """reward emitted for each predicted reward class (negative, zero, positive): the data's mean per class"""
    preset: str = "custom"
    """name of the preset this config started from"""

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)

    @staticmethod
    def from_dict(data: dict) -> WorldModelConfig:
        """Inverse of `to_dict`; unknown keys are an error (a config from another version or program)."""
        known = {f.name for f in fields(WorldModelConfig)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown world-model config keys {sorted(unknown)}: not a dreamworld world model")
        data = dict(data)
        data["tokenizer"] = TokenizerConfig(**data.get("tokenizer", {}))
        data["dynamics"] = DynamicsConfig(**data.get("dynamics", {}))
        data["termination"] = TerminationConfig(**data["termination"]) if data.get("termination") else None
        return WorldModelConfig(**data)


@dataclass
class DreamState:
    """A batch of dreams in progress: the KV cache, the tokens of each dream's current frame and, between
    `predict` and `advance`, the dynamics states of that frame. `drawn` keeps the last decoded frames with a copy
    of the tokens they show, so changing `tokens` (a dream restarting) can never leave stale pixels behind."""

    cache: KVCache
    tokens: torch.Tensor  # (B, N) tokens of the current frame
    hidden: torch.Tensor | None = None  # (B, N, C) states of the current frame after `predict`
    actions: torch.Tensor | None = None  # (B, ...) the actions given to `predict`, which lead to the next frame
    drawn: tuple[torch.Tensor, torch.Tensor] | None = None  # tokens (B, N), their frames float (B, 3, H, W)


class WorldModel(nn.Module):
    """Tokenizer + dynamics (+ termination CNN). `start` warms a batch of dreams up on real frames,
    `step` advances them.

    `precision` ("float32", or "bfloat16" autocast: about 2x faster dreams on a CPU with native bfloat16) is that of
    the dynamics in `start`, `predict` and `advance`; set it before
    starting dreams, as the KV cache takes its dtype. The tokenizer always runs in float32, so frames encode to the
    tokens the dynamics were trained on.
    """

    def __init__(self, cfg: WorldModelConfig):
        super().__init__()
        self.cfg = cfg
        self.action_space: gym.Space = space_from_json(cfg.action_space)
        self.tokenizer = Tokenizer(cfg.tokenizer)
        self.dynamics = Dynamics(cfg.dynamics, cfg.tokenizer.levels, self.tokenizer.tokens_per_frame,
                                 self.action_space, end_head=cfg.termination is None)
        self.termination = (None if cfg.termination is None
                            else TerminationNet(cfg.termination, cfg.tokenizer.image_size))
        self.register_buffer("reward_values", torch.tensor(cfg.reward_values, dtype=torch.float32))
        self.precision = "float32"  # of the dynamics in dreams, see the class docstring

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.reward_values.device

    def actions_tensor(self, actions) -> torch.Tensor:
        """Actions (B, ...) as a tensor on the model's device (long for Discrete, float for Box)."""
        dtype = torch.long if isinstance(self.action_space, gym.spaces.Discrete) else torch.float32
        return torch.as_tensor(actions, dtype=dtype, device=self.device)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> tokens (..., N)."""
        lead = frames.shape[:-3]
        tokens = self.tokenizer.encode(frames.reshape(-1, *frames.shape[-3:]))  # (prod(lead), N)
        return tokens.view(*lead, self.tokenizer.tokens_per_frame)  # (..., N), also for no frames at all

    @torch.no_grad()
    def start(self, frames: torch.Tensor, actions: torch.Tensor | None = None) -> DreamState:
        """Begin dreams from real context: frames uint8 (B, K, H, W, 3) and the K-1 actions between them.
        The last frame becomes the current frame; the earlier ones fill the KV cache."""
        return self.start_at(frames, actions, first_frame=0)

    @torch.no_grad()
    def start_at(self, frames: torch.Tensor, actions: torch.Tensor | None, first_frame: int) -> DreamState:
        """`start` with the context at absolute frame indices first_frame, first_frame + 1, ... (the rotary
        positions), so that its cache rows can replace rows of a batch whose next frame index is
        first_frame + K - 1 (a dream restarting inside a batch of running dreams)."""
        tokens = self.encode(frames.to(self.device))  # (B, K, N)
        cache = self.dynamics.empty_cache()
        cache.frame = first_frame
        with autocast(self.precision, self.device):
            for t in range(tokens.shape[1] - 1):
                self.dynamics.step(tokens[:, t], self.actions_tensor(actions[:, t]), cache)
        return DreamState(cache=cache, tokens=tokens[:, -1])

    @torch.no_grad()
    def replace_rows(self, state: DreamState, rows: torch.Tensor, fresh: DreamState) -> None:
        """Put the dreams of `fresh` (from `start_at`) into `state` at the indices `rows` (b,): their cache rows,
        tokens and drawn frames; the other dreams go on."""
        state.cache.replace_rows(rows, fresh.cache)
        state.tokens[rows] = fresh.tokens
        if state.drawn is not None:
            state.drawn[0][rows] = fresh.tokens
            state.drawn[1][rows] = self.drawn(fresh)

    @torch.no_grad()
    def step(self, state: DreamState, actions, temperature: float = 0.0, generator: torch.Generator | None = None):
        """Advance every dream by one step: actions (B, ...) -> (frames uint8 (B, H, W, 3), rewards (B,) float,
        terminated (B,) bool). `temperature` 0 takes the most likely tokens."""
        hidden = self.predict(state, actions)
        rewards, terminated = self.advance(state, self.sample(hidden, temperature, generator))
        return self.frames(state), rewards, terminated

    @torch.no_grad()
    def drawn(self, state: DreamState) -> torch.Tensor:
        """The dreams' current frames as the tokenizer draws them, float (B, 3, H, W) in [0, 1], decoded once."""
        if state.drawn is None or not torch.equal(state.drawn[0], state.tokens):
            state.drawn = (state.tokens.clone(), self.tokenizer.decode(state.tokens))
        return state.drawn[1]

    @torch.no_grad()
    def frames(self, state: DreamState) -> torch.Tensor:
        """The dreams' current frames, uint8 (B, H, W, 3)."""
        return self.tokenizer.to_uint8(self.drawn(state))

    @torch.no_grad()
    def predict(self, state: DreamState, actions) -> torch.Tensor:
        """First half of `step`: feed the current frames and actions (B, ...) through the cache -> the dynamics'
        states of the next frame (B, N, C). The caller draws the next tokens from them (`sample`) and passes them
        to `advance` (and decodes them only if it needs pixels)."""
        with autocast(self.precision, self.device):
            state.actions = self.actions_tensor(actions)  # (B, ...)
            state.hidden = self.dynamics.step(state.tokens, state.actions, state.cache)  # (B, N, C)
            return state.hidden

    @torch.no_grad()
    def sample(self, hidden: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Next tokens (B, N) from the states `predict` gave, at the dynamics' precision (`Dynamics.sample`)."""
        with autocast(self.precision, self.device):
            return self.dynamics.sample(hidden, temperature, generator, noise)

    @torch.no_grad()
    def advance(self, state: DreamState, next_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Second half of `step`: the sampled next tokens (B, N) become the current frame -> the step's rewards
        (B,) float and terminated (B,) bool, read off the transition from the old frame to the new one."""
        if state.hidden is None:
            raise RuntimeError("call predict() before advance()")
        with autocast(self.precision, self.device):
            reward_logits, end_logits = self.dynamics.outcomes(state.hidden, next_tokens)
        if self.termination is not None:
            before = self.drawn(state)  # (B, 3, H, W)
            state.drawn = (next_tokens.clone(), self.tokenizer.decode(next_tokens))
            end_logits = self.termination(before, state.drawn[1])
        state.tokens, state.hidden = next_tokens, None
        return self.reward_values[reward_logits.argmax(-1)], end_logits > 0

    @torch.no_grad()
    def imagine(self, frames: torch.Tensor, actions: torch.Tensor, temperature: float = 0.0,
                generator: torch.Generator | None = None):
        """Open-loop rollouts: context frames (B, K, H, W, 3), actions (B, K-1+horizon, ...) (the context's
        actions, then the ones to imagine) -> frames (B, horizon, H, W, 3), rewards and terminated (B, horizon)."""
        K = frames.shape[1]
        state = self.start(frames, actions[:, : K - 1])
        out_frames, out_rewards, out_ends = [], [], []
        for t in range(K - 1, actions.shape[1]):
            f, r, e = self.step(state, actions[:, t], temperature, generator)
            out_frames.append(f)
            out_rewards.append(r)
            out_ends.append(e)
        return torch.stack(out_frames, 1), torch.stack(out_rewards, 1), torch.stack(out_ends, 1)
