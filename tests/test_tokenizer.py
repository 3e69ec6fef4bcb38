"""Tests of the frame tokenizer: FSQ indexing and gradients, shapes, a tiny overfit, uint8 decoding."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamworld.model.tokenizer import FSQ, PSNR_CAP_DB, Tokenizer, TokenizerConfig, psnr, window_range

TINY = TokenizerConfig(image_size=16, channels=[8, 16], blocks=[0, 1], levels=[5, 4, 3], groups=4)


def dot_frames(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """n uint8 frames (n, size, size, 3): dark background with one white 2x2 dot at a random place."""
    rng = np.random.default_rng(seed)
    frames = np.full((n, size, size, 3), (10, 10, 26), dtype=np.uint8)
    for frame, (y, x) in zip(frames, rng.integers(0, size - 1, (n, 2)), strict=True):
        frame[y:y + 2, x:x + 2] = 255
    return frames


def test_fsq_index_round_trip_covers_every_code():
    fsq = FSQ([3, 4, 2])
    idx = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(idx)  # (24, 3)
    assert codes.shape == (24, 3) and codes.min() == -1 and codes.max() == 1
    assert torch.equal(fsq.codes_to_indices(codes), idx)
    assert len({tuple(c) for c in codes.tolist()}) == fsq.codebook_size


def test_fsq_output_is_on_the_grid_and_passes_gradients():
    fsq = FSQ([8, 5])
    z = (3 * torch.randn(64, 2)).requires_grad_()
    codes = fsq(z)
    assert torch.equal(fsq.indices_to_codes(fsq.codes_to_indices(codes)), codes.detach())
    codes.sum().backward()
    assert z.grad is not None and (z.grad != 0).any()


def test_default_config_shapes_and_uint8_decode():
    tok = Tokenizer().eval()
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    idx = tok.encode(frames)
    assert idx.shape == (2, tok.tokens_per_frame) and idx.dtype == torch.long
    assert tok.tokens_per_frame == tok.grid[0] * tok.grid[1]
    assert 0 <= idx.min() and idx.max() < tok.vocab_size <= 65536
    recon = tok.decode(idx)
    assert recon.shape == (2, 3, 64, 64) and recon.dtype == torch.float32
    assert 0 <= recon.min() and recon.max() <= 1
    pixels = tok.decode_uint8(idx)
    assert pixels.shape == (2, 64, 64, 3) and pixels.dtype == torch.uint8
    out, idx2 = tok(frames)
    assert out.shape == (2, 3, 64, 64) and torch.equal(idx2, idx)


def test_rejects_wrong_frames():
    with pytest.raises(ValueError, match="uint8"):
        Tokenizer(TINY).encode(torch.zeros(1, 16, 16, 3))
    with pytest.raises(ValueError, match="divisible by its GroupNorm groups"):
        Tokenizer(TokenizerConfig(image_size=16, channels=[6, 16], blocks=[0, 1], groups=4))


def test_channels_last_weights_draw_what_contiguous_weights_draw():
    """The conv weights are kept channels-last (a layout, not a change of values): the same frames give the same
    tokens and drawings as with contiguous weights, and the state dict holds the same numbers."""
    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig()).eval()
    weights = [p for p in tok.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    plain = Tokenizer(TokenizerConfig()).to(memory_format=torch.contiguous_format).eval()
    plain.load_state_dict(tok.state_dict())
    assert all(p.is_contiguous() for p in plain.parameters())
    frames = torch.from_numpy(dot_frames(4, size=64))
    with torch.no_grad():
        drawn, idx = tok(frames)
        drawn_plain, idx_plain = plain(frames)
    assert torch.equal(idx, idx_plain)
    torch.testing.assert_close(drawn, drawn_plain, atol=1e-5, rtol=1e-5)


def test_patch_encoder_codes_hang_on_their_patch_only():
    """With encoder="patches" a change inside one patch moves that token's code and no other; the frame encoder,
    whose GroupNorm statistics span the frame, moves codes far from the change."""
    torch.manual_seed(0)
    frames = torch.from_numpy(dot_frames(4, size=64))
    changed = frames.clone()
    changed[:, 40:44, 40:44] = 200  # inside patch (row 2, column 2) of the 4x4 grid: token 10
    for encoder in ("patches", "frame"):
        tok = Tokenizer(TokenizerConfig(encoder=encoder, levels=[255] * 6)).eval()  # fine levels: small moves show
        moved = tok.encode(frames) != tok.encode(changed)  # (4, 16)
        assert moved[:, 10].all(), encoder
        others = torch.cat((moved[:, :10], moved[:, 11:]), 1)
        assert not others.any() if encoder == "patches" else others.any(), encoder


def test_patch_encoder_trains_and_old_configs_read_as_frame():
    assert TokenizerConfig(**{k: v for k, v in vars(TINY).items() if k != "encoder"}).encoder == "frame"
    with pytest.raises(ValueError, match="'frame' or 'patches'"):
        Tokenizer(TokenizerConfig(encoder="pixels"))
    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(**vars(TINY) | {"encoder": "patches"}))
    frames = torch.from_numpy(dot_frames(8))
    start, _ = tok.loss(frames)
    opt = torch.optim.AdamW(tok.parameters(), lr=3e-3)
    for _ in range(60):
        loss, _ = tok.loss(frames)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert tok.loss(frames)[0].item() < 0.3 * start.item()


def test_overfits_a_moving_dot():
    torch.manual_seed(0)
    tok = Tokenizer(TINY)
    frames = torch.from_numpy(dot_frames(8))
    start, _ = tok.loss(frames)
    opt = torch.optim.AdamW(tok.parameters(), lr=3e-3)
    for _ in range(60):
        loss, _ = tok.loss(frames, frames.roll(1, 0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    end, stats = tok.loss(frames)
    assert end.item() < 0.3 * start.item(), (start.item(), end.item())
    assert set(stats) >= {"loss", "mse", "psnr"}


def test_window_range_matches_max_pooling():
    """The loss's edge weight: each pixel's 3x3 max - min, borders included, as max pooling defines it."""
    images = torch.rand(3, 3, 9, 7)
    images[0, :, :, 0] = 2.0  # an extreme column on the border
    pooled = F.max_pool2d(images, 3, 1, 1) + F.max_pool2d(-images, 3, 1, 1)
    assert torch.equal(window_range(images), pooled)
    assert window_range(torch.ones(1, 1, 4, 4)).abs().max() == 0


def test_psnr_convention():
    a = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    assert psnr(a, a) == pytest.approx(PSNR_CAP_DB)
    b = a.copy()
    b[0] = 255  # frame 0 at 0 dB, frame 1 exact: the mean of the per-frame values
    assert psnr(a, b) == pytest.approx(PSNR_CAP_DB / 2)
