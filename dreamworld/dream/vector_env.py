"""`DreamVectorEnv`: N dreams of a trained world model as one Gymnasium VectorEnv, stepped in one batched call.

Every step feeds all N current frames and actions through the dynamics transformer at once (its sliding KV
cache keeps the cost and memory of a step flat), samples the next frames' tokens and decodes them to pixels in
one call too (with `obs_type="latent"` it returns the FSQ codes; it decodes them anyway when the world model
reads terminations off the drawn frames, termination.py, and skips the decoder when it does not). With
`obs_type="objects"` the decoded frames of a built-in game are read by its frame parser into object vectors
(envs/games/object_vector.py), as `ObjectObservation` reads the real game's.

Per-dream resets inside the batch. The cache is a list of (N, heads, L, head_dim) tensors shared by the batch,
with one frame counter (the rotary position of the next frame). Every dream starts from a full context of
`context_frames` real frames, so every row always holds exactly `context_frames - 1` cached frames: rows have
equal lengths at all times. A dream that restarts while the others run is warmed up on its context in a small
batched call whose frames sit at the absolute positions the batch is at (`WorldModel.start_at`), and its keys,
values and current tokens replace row i. Attention depends on frame distances only, so the dream goes on as if
it had been started alone: the same tokens, rewards and terminations for the same seed and actions (tested;
decoded pixels can differ by one level of 255, as the CPU decoder's float rounding depends on the batch size).

Randomness is per dream: each row has its own numpy generator (which start context it draws) and torch
generator on the model's device (the sampling noise), seeded from `reset(seed=...)` (row i gets seed + i), so a
dream's frames do not depend on the batch it runs in.
"""

from __future__ import annotations

import math
import os

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dreamworld import checkpoint as ckpt
from dreamworld.dream.actions import check_actions
from dreamworld.dream.observations import check_obs_type, latent_codes, latent_space
from dreamworld.dream.starts import StartContexts
from dreamworld.envs.games.object_vector import ObjectEncoder
from dreamworld.model.dynamics import gumbel
from dreamworld.model.precision import resolve
from dreamworld.model.world_model import DreamState, WorldModel

WINDOW_PIXELS = 512
"""Side of the human-render window: frames are scaled up by whole multiples to about this size."""


class Viewer:
    """A pygame window showing uint8 (H, W, 3) frames scaled up (nearest neighbour), paced at `fps`."""

    def __init__(self, title: str, fps: int):
        try:
            import pygame
        except ImportError as e:
            raise ImportError("render_mode='human' needs pygame: pip install 'dreamworld[play]'") from e
        self._pygame, self._title, self._fps = pygame, title, fps
        self._window = self._clock = None

    def show(self, frame: np.ndarray) -> None:
        """Draw `frame` (opening the window on first use), then wait out the rest of the frame's time."""
        pygame = self._pygame
        if self._window is None:
            pygame.display.init()
            pygame.display.set_caption(self._title)
            scale = max(1, WINDOW_PIXELS // max(frame.shape[:2]))
            self._window = pygame.display.set_mode((frame.shape[1] * scale, frame.shape[0] * scale))
            self._clock = pygame.time.Clock()
        surface = pygame.surfarray.make_surface(frame.transpose(1, 0, 2))  # pygame wants (W, H, 3)
        pygame.transform.scale(surface, self._window.get_size(), self._window)
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self._fps)

    def close(self) -> None:
        """Close the window."""
        if self._window is not None:
            self._pygame.display.quit()
            self._window = None


def tile(frames: np.ndarray) -> np.ndarray:
    """Frames (B, H, W, 3) -> one image of them in a near-square grid (rows * H, cols * W, 3), black padding."""
    B, H, W, _ = frames.shape
    cols = math.ceil(math.sqrt(B))
    rows = math.ceil(B / cols)
    padded = np.zeros((rows * cols, H, W, 3), np.uint8)
    padded[:B] = frames
    grid = padded.reshape(rows, cols, H, W, 3).transpose(0, 2, 1, 3, 4)  # (rows, H, cols, W, 3)
    return grid.reshape(rows * H, cols * W, 3)  # (rows * H, cols * W, 3)


class DreamVectorEnv(VectorEnv):
    """`num_envs` dreams of the world model in checkpoint directory `checkpoint`, stepped together.

    Keyword arguments (the same for `gymnasium.make("dreamworld/Dream-v0", ...)` and `make_vec`):
    checkpoint: run directory (config.json + model.safetensors [+ starts.safetensors]);
    data: episode dataset to draw start contexts from (default: starts.safetensors of the checkpoint);
    obs_type: "pixels" (uint8 (H, W, 3) frames) or "latent" (float32 (N, dims) FSQ codes of the frame's N tokens,
    row-major over the token grid, in [-1, 1]; pixels are decoded only for a termination CNN or
    rendering) or "objects" (float32 object vectors of a built-in game's decoded frames, `object_space(env_id)`;
    a dream's first vector has the moves since the frame before in its real start context);
    temperature: sampling temperature of the next frame's tokens, 0 for the most likely ones (default 1.0, the
    distribution the model learned);
    max_episode_steps: dreams are truncated after this many steps;
    render_mode: None, "rgb_array" (a tuple of frames) or "human" (a pygame window, all dreams in a grid);
    device: where the model runs (default: CUDA when available, else the CPU);
    precision: "float32" (default), "bfloat16" or "auto" (bfloat16 where the device computes it natively): the
    dynamics' precision, about 2x faster dreams in bfloat16 on such a CPU (`WorldModel.precision`).
    model: the world model in `checkpoint`, already loaded on `device` (default: loaded here), so that a caller
    that holds it does not load it again; the dream sets its precision.

    Autoreset is NEXT_STEP: the step after a dream ends returns its new start observation, reward 0 and
    terminated = truncated = False, ignoring that dream's action.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, *, checkpoint: str | os.PathLike, data: str | os.PathLike | None = None,
                 obs_type: str = "pixels", temperature: float = 1.0, max_episode_steps: int = 1000,
                 render_mode: str | None = None, device: str | torch.device | None = None,
                 precision: str = "float32", model: WorldModel | None = None):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        check_obs_type(obs_type)
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0 (0: most likely frames), got {temperature!r}")
        if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got "
                             f"{render_mode!r}")
        device = device or (model.device if model is not None else "cuda" if torch.cuda.is_available() else "cpu")
        self.model: WorldModel = model if model is not None else ckpt.load(checkpoint, device)  # eval, on `device`
        self.model.precision = resolve(precision, device)
        cfg = self.model.cfg
        self.starts = StartContexts(checkpoint, cfg, data)
        self.num_envs, self.obs_type, self.temperature = num_envs, obs_type, float(temperature)
        self.max_episode_steps, self.render_mode = max_episode_steps, render_mode
        self.metadata = {**self.metadata, "render_fps": cfg.render_fps}
        self.single_action_space = self.model.action_space
        self._objects: ObjectEncoder | None = None
        if obs_type == "pixels":
            self.single_observation_space = gym.spaces.Box(0, 255, tuple(cfg.obs_shape), np.uint8)
        elif obs_type == "objects":
            try:
                self._objects = ObjectEncoder(cfg.env_id, num_envs)
            except ValueError as e:
                raise ValueError(f"obs_type='objects' reads a built-in game's frames, but {checkpoint} learned "
                                 f"{cfg.env_id or 'an unnamed env'}: {e}") from None
            self.single_observation_space = self._objects.space
        else:
            self.single_observation_space = latent_space(self.model)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._gens = [torch.Generator(device=self.model.device) for _ in range(num_envs)]
        self._steps = np.zeros(num_envs, np.int64)
        self._autoreset = np.zeros(num_envs, bool)
        self._state: DreamState | None = None
        self._frames: np.ndarray | None = None  # decoded current frames (B, H, W, 3), made on demand
        self._viewer: Viewer | None = None

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Start dreams from real contexts. `seed`: an int (dream i gets seed + i), one per dream, or None (keep
        each dream's random stream). `options={"reset_mask": bool array (num_envs,)}` restarts only those dreams
        (the others go on; their observations are returned unchanged)."""
        seeds = self._row_seeds(seed)  # checked before anything changes
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))
        mask = (options or {}).get("reset_mask")
        if mask is None:
            rows = np.arange(self.num_envs)
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != bool or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with a "
                                 f"True, got {mask.dtype} {mask.shape}")
            if self._state is None and not mask.all():
                raise ValueError("reset every dream once (without reset_mask) before restarting some of them")
            rows = np.flatnonzero(mask)
        for r in rows:
            if seeds[r] is not None or self._rngs[r] is None:
                self._rngs[r], _ = seeding.np_random(seeds[r])
                self._gens[r].manual_seed(int(self._rngs[r].integers(2**63 - 1)))
        self._start_rows(rows)
        obs = self._observe(rows)
        if self.render_mode == "human":
            self.render()
        return obs, {}

    def step(self, actions):
        """Advance every dream one frame with `actions` (num_envs, ...) in one batched model call; dreams that
        ended on the previous step restart instead (NEXT_STEP autoreset)."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        actions = check_actions(self.single_action_space, actions, self.num_envs)
        restarting = self._autoreset.copy()
        hidden = self.model.predict(self._state, actions)
        rewards, terminated = self.model.advance(self._state, self._sample(hidden, ~restarting))
        rewards = rewards.cpu().numpy().astype(np.float64)
        terminated = terminated.cpu().numpy()
        self._steps += 1
        if restarting.any():
            rows = np.flatnonzero(restarting)
            self._start_rows(rows)
            rewards[rows], terminated[rows] = 0.0, False
        truncated = self._steps >= self.max_episode_steps
        self._autoreset = terminated | truncated
        obs = self._observe()
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminated, truncated, {}

    def current_frames(self) -> np.ndarray:
        """The dreams' current frames, uint8 (num_envs, H, W, 3) (decoded here in latent mode)."""
        if self._state is None:
            raise RuntimeError("call reset() before asking for frames")
        if self._frames is None:
            self._frames = self.model.frames(self._state).cpu().numpy()  # (B, H, W, 3)
        return self._frames

    def render(self) -> tuple[np.ndarray, ...] | None:
        """"rgb_array": the current frames, one per dream; "human": show them in a window; None: nothing."""
        if self.render_mode == "rgb_array":
            return tuple(self.current_frames())
        if self.render_mode == "human":
            if self._viewer is None:
                self._viewer = Viewer(f"dream: {self.model.cfg.env_id or 'world model'}", self.metadata["render_fps"])
            self._viewer.show(tile(self.current_frames()))
        return None

    def close_extras(self, **kwargs) -> None:
        """Close the window, if any."""
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    def _row_seeds(self, seed) -> list[int | None]:
        """One seed (or None) per dream."""
        def is_seed(s) -> bool:
            return isinstance(s, (int, np.integer)) and s >= 0

        if seed is None:
            return [None] * self.num_envs
        if is_seed(seed):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed) if isinstance(seed, (list, tuple, np.ndarray)) else []
        if len(seeds) != self.num_envs or not all(s is None or is_seed(s) for s in seeds):
            raise ValueError(f"seed must be None, an int >= 0 (dream i gets seed + i) or one int >= 0 or None per "
                             f"dream ({self.num_envs}), got {seed!r}")
        return [None if s is None else int(s) for s in seeds]

    def _start_rows(self, rows: np.ndarray) -> None:
        """Begin new dreams in `rows` from start contexts drawn with each row's generator; the other rows go on."""
        picks = [self.starts.draw(self._rngs[r]) for r in rows]
        frames = torch.from_numpy(np.stack([f for f, _ in picks]))  # (b, K, H, W, 3)
        actions = np.stack([a for _, a in picks])  # (b, K-1, ...)
        self._steps[rows], self._autoreset[rows], self._frames = 0, False, None
        if self._objects is not None:
            self._objects.reset(rows, previous=frames[:, -2].numpy())  # (b, H, W, 3) the real frame before
        if len(rows) == self.num_envs:
            self._state = self.model.start(frames, actions)
            return
        state = self._state
        fresh = self.model.start_at(frames, actions, first_frame=state.cache.frame - (self.starts.length - 1))
        self.model.replace_rows(state, torch.as_tensor(rows, device=self.model.device), fresh)

    def _sample(self, hidden: torch.Tensor, stepping: np.ndarray) -> torch.Tensor:
        """Next tokens (B, N) from the dynamics' states (B, N, C): the most likely at temperature 0, else a draw at
        `temperature` with Gumbel noise from each stepping row's own generator; rows about to restart draw
        nothing, so every dream's stream is its own."""
        if self.temperature == 0 or not stepping.any():
            return self.model.sample(hidden, 0.0)
        rows = np.flatnonzero(stepping)
        shape = (hidden.shape[1], sum(self.model.dynamics.levels))  # (N, sum(levels))
        uniform = torch.stack([torch.rand(shape, generator=self._gens[r], device=hidden.device)
                               for r in rows])  # (stepping rows, N, sum(levels))
        noise = torch.zeros(len(hidden), *shape, device=hidden.device)  # (B, N, sum(levels))
        noise[torch.as_tensor(rows, device=hidden.device)] = gumbel(uniform)
        return self.model.sample(hidden, self.temperature, noise=noise)

    def _observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Observations of all dreams: frames uint8 (B, H, W, 3), FSQ codes float32 (B, N, dims) or object vectors
        float32 (B, size), those of the dreams not in `rows` (default: all) read before."""
        self._frames = None
        if self.obs_type == "latent":
            return latent_codes(self.model, self._state.tokens)  # (B, N, dims)
        if self.obs_type == "objects":
            rows = np.arange(self.num_envs) if rows is None else rows
            return self._objects(self.current_frames()[rows], rows)  # (B, size)
        return self.current_frames()
