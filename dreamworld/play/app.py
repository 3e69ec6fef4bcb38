"""`PlayApp`: the pygame window in which a person (or an agent) plays the dream.

Every frame: take the key events (real ones, or a script's), rewind or step the dream once, draw the header and
the game, record, then wait out the rest of the frame's time (`Pacer`). Events are handled every
frame and slow writes (videos, datasets) run in a worker thread, so the window never stops answering.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from dreamworld.dream.observations import latent_codes
from dreamworld.io import atomic_path

from .keymap import CONTROLS, KeyMap, control_codes
from .outputs import Jobs, Recorder, default_recording_path, save_episode
from .script import KeyScript
from .session import PlaySession

HEADER = 46  # pixels of the two header lines
GAP = 8  # pixels between the dream and the real game
MIN_WIDTH = 480  # the header needs this much width
TEMPERATURE_STEP, TEMPERATURE_MAX = 0.1, 3.0
MESSAGE_SECONDS = 3.0


@dataclass
class PlayOptions:
    """How the window plays: pace, size, recording, saving, scripted keys."""

    fps: int = 30
    """frames per second to keep to (0: as fast as the model goes); the header shows the fps reached"""
    scale: int = 8
    """window pixels per game pixel (nearest-neighbour upscaling)"""
    record: str | None = None
    """record from the first frame into this file (OUT.mp4, and OUT.gif beside it)"""
    recordings: str = "recordings"
    """folder for recordings started with F5"""
    record_scale: int = 4
    """upscaling of recorded videos"""
    save_to: str = "played"
    """dataset directory F6 appends played episodes to (created if new)"""
    script: str | None = None
    """scripted keys, e.g. "right*10,space,p,n,backspace*5,wait*30", or a file holding them (for headless play)"""
    frames: int | None = None
    """stop after this many frames (default: at Esc; headless, when the script is done)"""
    screenshot: str | None = None
    """save a PNG of the window when play ends"""
    auto_reset: bool = False
    """start a new dream when an episode ends (default: stop on its last frame until Enter, Backspace or P)"""
    rewind_seconds: float = 10.0
    """how far back Backspace can rewind"""


@dataclass
class PlayStats:
    """What a play session measured."""

    frames: int
    """frames shown"""
    seconds: float
    """wall time of the loop"""
    work_ms: list[float]
    """per frame: time spent before waiting for the next frame's turn (events, model, drawing, recording)"""
    interval_ms: list[float]
    """per frame: time from one frame to the next as the player sees it (work + pacing)"""
    messages: list[str]
    """messages shown in the header, in order (saved files, errors)"""

    @property
    def fps(self) -> float:
        """Frames per second reached."""
        return self.frames / self.seconds if self.seconds else 0.0


class Pacer:
    """Keeps frames 1/fps apart on average: each deadline is the last one plus a frame, so oversleeping on one frame
    is made up on the next; when frames run more than a frame late the schedule moves instead of rushing."""

    def __init__(self, fps: int):
        self.period = 1 / fps if fps else 0.0
        self.deadline: float | None = None
        self.times: deque[float] = deque(maxlen=31)

    def wait(self) -> None:
        """Sleep until the next frame's turn."""
        if self.period:
            self.deadline = (self.deadline or time.perf_counter()) + self.period
            delay = self.deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -self.period:
                self.deadline = time.perf_counter()
        self.times.append(time.perf_counter())

    @property
    def fps(self) -> float:
        """Frames per second over the last 30 frames."""
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


class PlayApp:
    """The play window over a `PlaySession`: keys through `keymap`, `agent` (a policy with `act(obs (N, H, W, 3))
    -> actions (N, ...)`) when M hands it control."""

    def __init__(self, session: PlaySession, keymap: KeyMap, options: PlayOptions, agent=None, title: str = "dream"):
        if options.scale < 1 or options.fps < 0 or options.record_scale < 1:
            raise ValueError(f"--scale and --record-scale must be >= 1 and --fps >= 0, got scale {options.scale}, "
                             f"record scale {options.record_scale}, fps {options.fps}")
        self.session, self.keymap, self.options, self.agent, self.title = session, keymap, options, agent, title
        self.cfg = session.model.cfg
        self.headless = os.environ.get("SDL_VIDEODRIVER") == "dummy"
        if self.headless and options.script is None and options.frames is None:
            raise ValueError("SDL_VIDEODRIVER=dummy shows no window and takes no keys: pass --script KEYS and/or "
                             "--frames N")
        self.jobs = Jobs()
        self.recorder = Recorder(self.jobs, fps=self.cfg.render_fps, scale=options.record_scale)
        self.held: set[int] = set()
        self.paused = self.ended = self.step_once = self.help = False
        self.running = True
        self.agent_mode = False
        self.players: set[str] = set()
        self.messages: list[str] = []
        self._message, self._message_until = "", 0.0
        self.controls: dict[int, str] = {}
        self.font = self.window = None

    def run(self) -> PlayStats:
        """Play until Esc, the window closing, --frames, or (headless) the end of the script."""
        import pygame

        pygame.display.init()
        pygame.font.init()
        try:
            return self._loop(pygame)
        finally:
            self.recorder.stop()
            for message in self.jobs.close():
                self.messages.append(message)
            pygame.display.quit()

    def _loop(self, pygame) -> PlayStats:
        self.controls = control_codes()
        script = KeyScript.from_option(self.options.script) if self.options.script is not None else None
        self.font = pygame.font.Font(None, 20)
        self.session.reset()
        if self.options.record:
            self.recorder.start(self.options.record)
        pacer = Pacer(self.options.fps)
        work, intervals, frames = [], [], 0
        start = last = time.perf_counter()
        with torch.inference_mode():
            while self.running:
                t0 = time.perf_counter()
                if script is not None:
                    script.post_frame()
                    if script.done and self.headless and self.options.frames is None:
                        break
                self._handle_events(pygame)
                self._advance()
                self._draw(pygame, pacer.fps)
                self.recorder.add(self.picture())
                for message in self.jobs.poll():
                    self.say(message)
                work.append(1000 * (time.perf_counter() - t0))
                pacer.wait()
                now = time.perf_counter()
                intervals.append(1000 * (now - last))
                last, frames = now, frames + 1
                if self.options.frames is not None and frames >= self.options.frames:
                    break
        if self.options.screenshot and self.window is not None:
            os.makedirs(os.path.dirname(os.path.abspath(self.options.screenshot)), exist_ok=True)
            with atomic_path(self.options.screenshot) as tmp:
                pygame.image.save(self.window, str(tmp))
        return PlayStats(frames, time.perf_counter() - start, work, intervals, self.messages)

    def say(self, message: str) -> None:
        """Show `message` in the header for a few seconds."""
        self.messages.append(message)
        self._message, self._message_until = message, time.perf_counter() + MESSAGE_SECONDS

    # -- input ------------------------------------------------------------------------------------------------
    def _handle_events(self, pygame) -> None:
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                self.running = False
            elif event.type == pygame.KEYDOWN:
                self.held.add(event.key)
                if event.key in self.controls:
                    self._control(self.controls[event.key])
            elif event.type == pygame.KEYUP:
                self.held.discard(event.key)

    def _control(self, name: str) -> None:
        """React to a control key (see `CONTROLS`)."""
        session = self.session
        if name == "return":
            self._restart()
        elif name == "p":
            if self.ended:
                self.ended = False
            else:
                self.paused = not self.paused
        elif name == "n":
            self.step_once = self.paused
        elif name == "m":
            if self.agent is None:
                self.say("no agent loaded: start with --agent AGENT")
            else:
                self.agent_mode = not self.agent_mode
                if self.agent_mode and hasattr(self.agent, "reset"):
                    self.agent.reset()  # an objects agent measures moves from the frames it saw, none yet
        elif name == "v":
            try:
                session.set_compare(not session.compare)
            except (ImportError, ValueError, gym.error.Error) as e:
                self.say(f"no real game here: {e}")
                return
            if session.compare:
                self._restart(reset=False)
        elif name in ("t", "g"):
            sign = 1 if name == "t" else -1
            session.temperature = round(min(TEMPERATURE_MAX, max(0.0, session.temperature + sign * TEMPERATURE_STEP)),
                                        2)
        elif name == "f5":
            if self.recorder.on:
                self.recorder.stop()
                self.say("recording stopped: writing MP4 and GIF")
            else:
                self.recorder.start(default_recording_path(self.options.recordings))
        elif name == "f6":
            track, source = session.episode()
            policy = "+".join(sorted(self.players)) or "none"
            self.jobs.submit(save_episode, self.options.save_to, self.cfg, track.copy(), source, policy)
        elif name == "h":
            self.help = not self.help
        elif name == "escape":
            self.running = False

    def _restart(self, reset: bool = True) -> None:
        """A new start (the session already restarted when `reset` is False)."""
        if reset:
            self.session.reset()
        self.ended, self.players = False, set()

    # -- stepping ---------------------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Rewind while Backspace is held; else step once unless paused or ended."""
        import pygame

        if pygame.K_BACKSPACE in self.held:
            comparing = self.session.compare
            if self.session.rewind():
                self.ended = False
            if comparing and not self.session.compare:
                self.say("the real game cannot rewind: press V to restart both")
            return
        if self.ended or (self.paused and not self.step_once):
            return
        self.step_once = False
        reward, ended = self.session.step(self._action())
        if ended and self.options.auto_reset:
            self.say(f"episode ended with return {self.session.current.episode_return:g}: new start")
            self._restart()
        elif ended:
            self.ended = True
            self.say("episode ended: Enter new start, Backspace rewind, P play on")

    def _action(self):
        """The agent's action in agent mode, else the keys' action."""
        if self.agent_mode:
            self.players.add("agent")
            action = np.asarray(self.agent.act(self._agent_obs()))[0]  # (1, ...) -> (...)
            return int(action) if isinstance(self.session.model.action_space, gym.spaces.Discrete) else action
        self.players.add("human")
        return self.keymap.action(self.held)

    def _agent_obs(self) -> np.ndarray:
        """The dream as the agent observes it: the frame (1, H, W, 3) (an objects agent reads it itself), or its FSQ
        codes (1, N, dims) for an agent trained on latent observations."""
        if getattr(self.agent, "obs_type", "pixels") == "latent":
            return latent_codes(self.session.model, self.session.state.tokens)  # (1, N, dims)
        return self.session.current.image[None]

    # -- drawing ----------------------------------------------------------------------------------------------
    def picture(self) -> np.ndarray:
        """The game area at game resolution: the dream, or dream | real when comparing (H, W', 3)."""
        now = self.session.current
        if not self.session.compare:
            return now.image
        real = now.real_image if now.real_image is not None else np.zeros_like(now.image)
        gap = np.zeros((now.image.shape[0], max(1, GAP // self.options.scale), 3), np.uint8)  # (H, g, 3)
        return np.concatenate([now.image, gap, real], axis=1)  # (H, 2W + g, 3)

    def _draw(self, pygame, fps: float) -> None:
        s = self.options.scale
        H, W = self.cfg.obs_shape[:2]
        panels = 2 if self.session.compare else 1
        size = (max(MIN_WIDTH, panels * W * s + (panels - 1) * GAP), HEADER + H * s)
        if self.window is None or self.window.get_size() != size:
            self.window = pygame.display.set_mode(size)
            pygame.display.set_caption(f"dreamworld play: {self.title}")
        window = self.window
        window.fill((24, 24, 32))
        now = self.session.current
        images = [now.image] + ([now.real_image] if self.session.compare else [])
        for i, image in enumerate(images):
            if image is None:
                continue
            surface = pygame.surfarray.make_surface(image.transpose(1, 0, 2))  # pygame wants (W, H, 3)
            window.blit(pygame.transform.scale(surface, (W * s, H * s)), (i * (W * s + GAP), HEADER))
        for i, text in enumerate(self._header(fps)):
            window.blit(self.font.render(text, True, (230, 230, 230)), (6, 5 + 20 * i))
        if self.recorder.on:
            pygame.draw.circle(window, (230, 40, 40), (size[0] - 14, 14), 7)
        if self.help:
            self._draw_help(pygame, window)
        pygame.display.flip()

    def _header(self, fps: float) -> list[str]:
        """The two header lines."""
        session, now = self.session, self.session.current
        mode = "agent" if self.agent_mode else "human"
        state = " | ended" if self.ended else (" | paused" if self.paused else "")
        target = f"/{self.options.fps}" if self.options.fps else ""
        first = (f"fps {fps:.0f}{target}   step {now.step}   return {now.episode_return:g}   "
                 f"temp {session.temperature:.2f}   {mode}{state}")
        if time.perf_counter() < self._message_until:
            second = self._message
        elif (diff := session.difference()) is not None:
            second = f"dream | real   diff {diff[0]:.1f}/255   PSNR {diff[1]:.1f} dB" + (
                "   (real game over)" if now.real_done else "")
        else:
            second = "H: help   Esc: quit"
        return [first, second]

    def _draw_help(self, pygame, window) -> None:
        lines = ["keys"] + [f"{label}: {what}" for label, what in CONTROLS.values()] + ["", "game keys"]
        lines += self.keymap.describe() or ["none for this game (use an agent: M)"]
        overlay = pygame.Surface((window.get_width(), window.get_height() - HEADER), pygame.SRCALPHA)
        overlay.fill((0, 0, 0, 200))
        window.blit(overlay, (0, HEADER))
        for i, text in enumerate(lines):
            window.blit(self.font.render(text, True, (255, 255, 160)), (10, HEADER + 8 + 17 * i))
