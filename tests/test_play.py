"""The play window, headless (SDL_VIDEODRIVER=dummy): every key, a screenshot with content, recordings read back,
exact rewind, datasets of played episodes, key maps, scripts and errors."""

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from toy_models import end_module, toy_config

from dreamworld.checkpoint import STARTS, save_model
from dreamworld.cli.main import main
from dreamworld.cli.play import PlayArgs, build_app, resolve_checkpoint
from dreamworld.dream.starts import StartContexts
from dreamworld.envs import EpisodeDataset
from dreamworld.io import write_safetensors
from dreamworld.model.world_model import WorldModel
from dreamworld.play import KeyMap, PlayOptions, PlaySession
from dreamworld.play.app import HEADER
from dreamworld.play.script import parse_script

BOX = gym.spaces.Box(-1, 1, (2,), np.float32)


def make_run(path, env_id="dreamworld/Catch-v0", space=None):
    """A random toy world model of `env_id` (Catch: Discrete(3), like the toy) with 2 start contexts."""
    torch.manual_seed(0)
    cfg = toy_config(space)
    cfg.env_id, cfg.render_fps = env_id, 15
    model = WorldModel(cfg)
    with torch.no_grad():
        end_module(model).end_head.bias.fill_(-100.0)  # never ends
        model.tokenizer.decoder[-1].weight.normal_(std=0.3)  # make tokens show in the frames
    save_model(path, model)
    K = cfg.dynamics.context_frames
    rng = np.random.default_rng(0)
    actions = np.zeros((2, K - 1, *model.action_space.shape), model.action_space.dtype)
    write_safetensors(path / STARTS, {"frames": torch.from_numpy(rng.integers(0, 256, (2, K, 64, 64, 3), np.uint8)),
                                      "actions": torch.from_numpy(actions)})
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "catch")


def play(run, tmp_path, **options) -> tuple:
    """Build and run a headless app; returns the app and its stats."""
    options.setdefault("fps", 0)
    options.setdefault("scale", 2)
    args = PlayArgs(checkpoint=str(run), window=PlayOptions(**options))
    app = build_app(args)
    return app, app.run()


def test_every_key_headless(run, tmp_path):
    script = ("right*3,left+space,a*2,d,wait*2,p,n,n,p,backspace*3,wait,m,v,right*3,t,t,g,h,wait,h,f5,right*4,f5,"
              "f6,return,wait*2,escape,wait*10")
    app, stats = play(run, tmp_path, script=script, recordings=str(tmp_path / "rec"),
                      save_to=str(tmp_path / "played"))
    assert stats.frames == 39  # Esc on frame 39 ends play before the last waits
    assert app.session.compare  # V turned the real game on (Catch is installed)
    assert app.session.temperature == pytest.approx(1.1)
    assert any("no agent loaded" in m for m in stats.messages)
    assert any(m.startswith("recorded 5 frames") for m in stats.messages)  # F5 ... F5: 4 rights and the F5 frame
    assert any(m.startswith("saved") and "real" in m for m in stats.messages), stats.messages
    assert len(list((tmp_path / "rec").glob("*.mp4"))) == 1 and len(list((tmp_path / "rec").glob("*.gif"))) == 1
    ds = EpisodeDataset(tmp_path / "played")
    assert ds.env_id == "dreamworld/Catch-v0" and len(ds) == 1 and ds.episodes[0].policy == "play:human:real"


def test_screenshot_has_header_and_game(run, tmp_path):
    shot = tmp_path / "shot.png"
    play(run, tmp_path, frames=5, scale=4, screenshot=str(shot))
    image = iio.imread(shot)[..., :3]  # (height, width, 3)
    assert image.shape == (HEADER + 64 * 4, 480, 3)
    header, game = image[:HEADER], image[HEADER:, : 64 * 4]
    assert (header.max(axis=-1) > 200).mean() > 0.01  # text drawn
    assert game.std() > 10 and len(np.unique(game.reshape(-1, 3), axis=0)) > 50  # a frame, not a blank area
    assert (game[::4, ::4] == game[1::4, 1::4]).all()  # nearest-neighbour upscaling: 4x4 blocks


def test_record_frame_count_and_content(run, tmp_path):
    out = tmp_path / "out.mp4"
    app, stats = play(run, tmp_path, frames=12, record=str(out), record_scale=2)
    mp4, gif = iio.imread(out), iio.imread(out.with_suffix(".gif"))
    assert mp4.shape == (12, 128, 128, 3) and gif.shape[:3] == (12, 128, 128)
    last = app.session.current.image.repeat(2, 0).repeat(2, 1)  # (128, 128, 3)
    assert np.abs(gif[-1][..., :3].astype(int) - last).mean() < 8  # GIF palette, not exact
    assert np.abs(mp4[-1].astype(int) - last).mean() < 30  # H.264 is lossy


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_rewind_is_exact(run, temperature):
    from dreamworld.checkpoint import load

    model = load(run)
    session = PlaySession(model, StartContexts(run, model.cfg), temperature=temperature, rewind_frames=20, seed=3)
    session.reset()
    actions = [0, 1, 2, 2, 1, 0, 1, 2, 0, 0]
    images = [session.current.image]
    for a in actions:
        session.step(a)
        images.append(session.current.image)
    for _ in range(6):
        assert session.rewind()
    assert session.current.step == 4 and np.array_equal(session.current.image, images[4])
    assert len(session.dream.actions) == 4 and len(session.dream.frames) == 5
    for t, a in enumerate(actions[4:], start=5):  # the same actions again: the same frames
        session.step(a)
        assert np.array_equal(session.current.image, images[t])


def test_rewind_stops_at_its_window(run):
    from dreamworld.checkpoint import load

    model = load(run)
    session = PlaySession(model, StartContexts(run, model.cfg), rewind_frames=5)
    session.reset()
    for _ in range(12):
        session.step(1)
    assert sum(session.rewind() for _ in range(10)) == 5
    assert session.current.step == 7
    assert len(session.rows) == model.cfg.dynamics.context_frames - 1  # just the rows the cache is rebuilt from
    session.step(1)
    assert session.current.step == 8


def test_real_game_beside_the_dream(run):
    from dreamworld.checkpoint import load

    model = load(run)
    session = PlaySession(model, StartContexts(run, model.cfg), temperature=0.0)
    session.set_compare(True)
    assert session.current.real_image.shape == (64, 64, 3)
    mae, psnr = session.difference()
    diff = session.current.image.astype(float) - session.current.real_image.astype(float)  # dream - real
    assert mae == pytest.approx(np.abs(diff).mean()) and psnr == pytest.approx(10 * np.log10(255**2 / (diff**2).mean()))
    assert mae > 0  # an untrained toy model does not draw the real game
    for _ in range(3):
        session.step(2)
    real_before = session.current.real_image
    session.step(1)
    session.rewind()
    assert np.array_equal(session.current.real_image, real_before)
    session.step(1)
    track, source = session.episode()
    assert source == "real" and len(track.actions) == 4 and len(track.frames) == 5


def test_keymaps():
    import pygame

    pygame.display.init()
    catch = KeyMap.for_env("dreamworld/Catch-v0", gym.spaces.Discrete(3))
    assert catch.action(set()) == 0
    assert catch.action({pygame.K_LEFT}) == catch.action({ord("a")}) != catch.action({pygame.K_RIGHT})
    assert not any(pygame.K_p in keys or pygame.K_m in keys for keys in catch.mapping)  # controls left out
    box = KeyMap.for_env("Nothing-v0", BOX)
    assert np.array_equal(box.action(set()), [0, 0])
    assert np.array_equal(box.action({pygame.K_LEFT, pygame.K_UP}), [-1, 1])
    assert box.action({pygame.K_RIGHT}).dtype == np.float32 and box.describe()


def test_box_actions_play(tmp_path):
    run = make_run(tmp_path / "box", env_id="Nothing-v0", space=BOX)
    app, stats = play(run, tmp_path, script="left*2,up+right,v,wait")
    assert stats.frames == 5 and not app.session.compare
    assert any("no real game here" in m for m in stats.messages)
    assert np.array_equal(app.session.dream.actions[2], [1, 1])


def test_script_parsing_and_errors(run, tmp_path):
    import pygame

    pygame.display.init()
    file = tmp_path / "keys.txt"
    file.write_text("right*2  # hold\nenter, wait*3\n")
    app = build_app(PlayArgs(checkpoint=str(run), window=PlayOptions(script=str(file))))
    assert app.options.script == str(file)
    assert parse_script(file.read_text()) == [((pygame.K_RIGHT,), 2), ((pygame.K_RETURN,), 1), ((), 3)]
    with pytest.raises(ValueError, match="unknown key 'rigth'"):
        parse_script("rigth*2")
    with pytest.raises(ValueError, match="repeat count"):
        parse_script("left*0")
    with pytest.raises(ValueError, match="--script KEYS"):
        build_app(PlayArgs(checkpoint=str(run)))
    with pytest.raises(FileNotFoundError, match="no shipped world 'nope'.*--checkpoint"):
        resolve_checkpoint(None, "nope")
    with pytest.raises(ValueError, match="not both"):
        resolve_checkpoint("a", "b")


def test_cli_headless(run, tmp_path, capsys):
    main(["play", "--checkpoint", str(run), "--script", "right*3,p,n", "--fps", "0", "--scale", "2"])
    assert "fps reached" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["play", "--world", "nope", "--frames", "1"])
    assert "no shipped world" in capsys.readouterr().err


@pytest.mark.parametrize("obs_type", ["pixels", "latent"])
def test_agent_control(run, tmp_path, obs_type):
    from dreamworld.agents import ActorCritic, NetworkConfig, Policy

    obs_space = (gym.spaces.Box(0, 255, (64, 64, 3), np.uint8) if obs_type == "pixels"
                 else gym.spaces.Box(-1, 1, (16, 3), np.float32))  # toy: 16 tokens, 3 FSQ dims
    net = ActorCritic(obs_space, gym.spaces.Discrete(3), NetworkConfig(hidden=16, channels=[4, 8]))
    Policy(net, obs_type, "dreamworld/Catch-v0").save(tmp_path / "agent")
    app = build_app(PlayArgs(checkpoint=str(run), agent=str(tmp_path / "agent"),
                             window=PlayOptions(script="m,wait*3", fps=0)))
    app.run()
    assert app.agent_mode and app.players == {"agent"} and len(app.session.dream.actions) == 4
    assert set(app.session.dream.actions) <= {0, 1, 2}
    Policy(ActorCritic(obs_space, gym.spaces.Discrete(5), NetworkConfig(hidden=16, channels=[4, 8])), obs_type,
           "Other").save(tmp_path / "other")
    with pytest.raises(ValueError, match="acts in Discrete\\(5\\)"):
        build_app(PlayArgs(checkpoint=str(run), agent=str(tmp_path / "other"), window=PlayOptions(frames=1)))


def test_real_game_that_cannot_be_copied_stops_comparing_on_rewind(run, monkeypatch):
    from dreamworld.checkpoint import load

    model = load(run)
    session = PlaySession(model, StartContexts(run, model.cfg))
    session.set_compare(True)

    def refuse(obj):
        raise TypeError("cannot pickle an emulator")

    monkeypatch.setattr("dreamworld.play.session.copy.deepcopy", refuse)
    session.step(1)
    session.step(1)
    assert session.rewind() and not session.compare and session.current.step == 1
    assert session.episode()[1] == "dream"
