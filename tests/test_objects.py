"""Tests of the object parser (envs/games/objects.py): the sprites, score and lives read off the frames of every
built-in game equal the game's own account of them, through noise, a colour shift and a slight blur too."""

import functools

import numpy as np
import pytest

from dreamworld.envs.games import KINDS, Bricks, Catch, Cave, FrameObjects, Sprite, parse, parser
from dreamworld.envs.games._base import BACKGROUND, HUD_TEXT, SIZE, draw_hud

GAMES = {"Catch": Catch, "Bricks": Bricks, "Cave": Cave}
STEPS = 2000
BOX = {"gem": (2, 2), "bomb": (3, 3), "player": (8, 2), "ball": (2, 2), "paddle": (10, 2), "brick": (7, 3),
       "ship": (5, 3), "coin": (2, 2)}  # kind -> (w, h) of its drawn box


@functools.cache
def played(name: str) -> tuple[np.ndarray, list[FrameObjects]]:
    """Frames (n, 64, 64, 3) of STEPS steps of a game, 70% scripted and 30% random actions, a new game after each
    end, with the game's own account (`true_objects`) of each frame."""
    env, rng = GAMES[name](), np.random.default_rng(0)
    frame, _ = env.reset(seed=0)
    frames, truths = [frame], [env.true_objects()]
    for _ in range(STEPS):
        action = env.scripted_action() if rng.random() < 0.7 else int(rng.integers(env.action_space.n))
        frame, _, terminated, _, _ = env.step(action)
        frames.append(frame)
        truths.append(env.true_objects())
        if terminated:
            frame, _ = env.reset(seed=int(rng.integers(1 << 30)))
            frames.append(frame)
            truths.append(env.true_objects())
    return np.stack(frames), truths


def box_of(sprite: Sprite) -> tuple[int, int, int, int]:
    """The (x, y, w, h) box a wholly visible sprite is drawn in."""
    w, h = BOX[sprite.kind]
    return int(sprite.x - (w - 1) / 2), int(sprite.y - (h - 1) / 2), w, h


def same(a: FrameObjects, b: FrameObjects, tol: float = 0.5) -> bool:
    """Same score and lives, and sprites that pair up one to one by kind with centres within `tol` px."""
    if (a.score, a.lives) != (b.score, b.lives) or len(a.sprites) != len(b.sprites):
        return False
    left = list(b.sprites)
    for s in a.sprites:
        match = [t for t in left if t.kind == s.kind and abs(t.x - s.x) <= tol and abs(t.y - s.y) <= tol]
        if not match:
            return False
        left.remove(match[0])
    return True


def mismatches(name: str, frames: np.ndarray, truths: list[FrameObjects]) -> list[int]:
    """Indices of the frames whose parse differs from the truth."""
    pairs = enumerate(zip(frames, truths, strict=True))
    return [i for i, (frame, truth) in pairs if not same(parse(name, frame), truth)]


def blur(frame: np.ndarray) -> np.ndarray:
    """A slight blur: the separable kernel (0.075, 0.85, 0.075), edges repeated."""
    out = frame.astype(np.float64)
    for axis in (0, 1):
        padded = np.pad(out, [(1, 1) if a == axis else (0, 0) for a in range(3)], mode="edge")
        before, after = padded.take(range(SIZE), axis), padded.take(range(2, SIZE + 2), axis)
        out = 0.85 * out + 0.075 * (before + after)
    return out.round().astype(np.uint8)


def noisy(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian colour noise of 10 levels, clipped."""
    return np.clip(frame + rng.normal(0, 10, frame.shape), 0, 255).round().astype(np.uint8)


def shifted(frame: np.ndarray) -> np.ndarray:
    """Every colour off by 25 levels a channel (+, -, +), clipped."""
    return np.clip(frame.astype(np.int64) + (25, -25, 25), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", GAMES)
def test_parse_equals_the_game_state_on_every_frame(name):
    frames, truths = played(name)
    assert mismatches(name, frames, truths) == []
    seen = {s.kind for truth in truths for s in truth.sprites}
    assert seen == set(KINDS[name])
    assert max(t.score for t in truths) >= 10  # several digits read
    if name != "Cave":
        assert {t.lives for t in truths} == {0, 1, 2, 3}


def test_the_hard_cases_occur_in_the_played_frames():
    """The frames above include touching items of one kind (Catch), a coin half past the left edge (Cave) and a
    ball half below the bottom (Bricks); each parsed right there."""

    def touching(truth: FrameObjects) -> bool:
        items = [s for s in truth.sprites if s.kind in ("gem", "bomb")]
        return any(a.kind == b.kind and abs(a.x - b.x) <= BOX[a.kind][0] and abs(a.y - b.y) < BOX[a.kind][1]
                   for i, a in enumerate(items) for b in items[i + 1:])

    cases = {
        "Catch": touching,
        "Cave": lambda t: any(s.kind == "coin" and s.x == 0 for s in t.sprites),
        "Bricks": lambda t: any(s.kind == "ball" and s.y == SIZE - 1 for s in t.sprites),
    }
    for name, case in cases.items():
        _, truths = played(name)
        assert sum(map(case, truths)) > 0, name


def test_a_ball_over_a_brick_leaves_both_found():
    """Only after the wall is rebuilt can the ball sit on a brick; the brick keeps 17 of its 21 pixels."""
    env = Bricks()
    env.reset(seed=1)
    env.ball_x, env.ball_y = 9, 15  # over the second brick of the top row
    env._draw()
    truth = env.true_objects()
    assert len([s for s in truth.sprites if s.kind == "brick"]) == 40
    assert same(parse("Bricks", env.frame), truth)


@pytest.mark.parametrize("distortion", ["noise", "shift", "blur"])
@pytest.mark.parametrize("name", GAMES)
def test_distorted_frames_parse_the_same(name, distortion):
    frames, truths = played(name)
    rng = np.random.default_rng(1)
    change = {"noise": lambda f: noisy(f, rng), "shift": shifted, "blur": blur}[distortion]
    picked = range(0, len(frames), 10)
    distorted = np.stack([change(frames[i]) for i in picked])
    assert mismatches(name, distorted, [truths[i] for i in picked]) == []


@pytest.mark.parametrize("name", GAMES)
def test_a_dimmed_sprite_is_not_found(name):
    """Each kind in turn: one whole sprite mixed half and half with the background is no longer reported."""
    frames, truths = played(name)

    def on_screen(s: Sprite) -> bool:
        x, y, w, h = box_of(s)
        return x >= 0 and y >= 0 and x + w <= SIZE and y + h <= SIZE

    for kind in KINDS[name]:
        i, sprite = next((i, s) for i, t in enumerate(truths) for s in t.sprites if s.kind == kind and on_screen(s))
        x, y, w, h = box_of(sprite)
        frame = frames[i].copy()
        frame[y:y + h, x:x + w] = frame[y:y + h, x:x + w] // 2 + BACKGROUND // 2
        rest = list(truths[i].sprites)
        rest.remove(sprite)
        assert same(parse(name, frame), FrameObjects(rest, truths[i].score, truths[i].lives)), kind


@pytest.mark.parametrize("name", GAMES)
def test_a_background_frame_shows_nothing(name):
    objects = parse(name, np.broadcast_to(BACKGROUND, (SIZE, SIZE, 3)).copy())
    assert objects == FrameObjects([], None, None if name == "Cave" else 0)


@pytest.mark.parametrize("score", [0, 7, 10, 305, 98761])
@pytest.mark.parametrize("lives", [0, 1, 3])
def test_the_hud_reads_back(score, lives):
    frame = np.broadcast_to(BACKGROUND, (SIZE, SIZE, 3)).copy()
    draw_hud(frame, score, lives)
    assert (parse("Catch", frame).score, parse("Catch", frame).lives) == (score, lives)
    frame[1:6, 1:4] = HUD_TEXT  # a full 3x5 cell: 8 and two pixels more, no digit is that close
    assert parse("Catch", frame).score is None


def test_parser_by_env_id():
    frames, _ = played("Catch")
    for env_id in ("dreamworld/Catch-v0", "Catch"):
        assert parser(env_id)(frames[5]) == parse("Catch", frames[5])
    assert parser("dreamworld/Bricks-v0") is not None and parser("Cave") is not None
    for other in ("ALE/Pong-v5", "dreamworld/Pong-v0", "CartPole-v1", "Catch-v0"):
        assert parser(other) is None
    assert set(KINDS) == set(GAMES)
