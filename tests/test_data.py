"""Training data in memory (dreamworld/train/data.py): which frames the tokenizer's batches show."""

import math

import pytest
import torch

from dreamworld.train.data import frames_with_endings


def test_tokenizer_batches_show_the_frames_episodes_ended_on():
    frames, terminal = torch.arange(1000), torch.tensor([10, 500, 999])
    idx = frames_with_endings(frames, terminal, 20000, 0.25, torch.Generator().manual_seed(0))
    share = torch.isin(idx, terminal).float().mean()
    assert 0.23 < share < 0.27  # a quarter, against 0.3% for a uniform draw
    plain = frames_with_endings(frames, torch.tensor([], dtype=torch.long), 100, 0.25, torch.Generator())
    assert plain.shape == (100,)  # a dataset without endings draws uniformly


@pytest.mark.parametrize("levels, basis", [([8, 5, 5, 5], [1, 8, 40, 200]), ([8, 8, 5, 5, 5], [1, 8, 64, 320, 1600])])
def test_near_miss_codes_move_one_digit_one_level_in_the_share_asked(levels, basis):
    from dreamworld.train.data import near_miss_codes

    codes = math.prod(levels)
    tokens = torch.randint(codes, (200, 64), generator=torch.Generator().manual_seed(0))
    moved = near_miss_codes(tokens, levels, 0.3, torch.Generator().manual_seed(1))
    basis = torch.tensor(basis)

    def digits(t):
        return t[..., None] // basis % torch.tensor(levels)  # (..., D)

    changed = moved != tokens
    assert 0.28 < changed.float().mean() < 0.32
    diff = (digits(moved) - digits(tokens)).abs()  # (200, 64, D)
    assert torch.equal(diff.sum(-1), changed.long())  # one digit, one level, where a token moved; nothing elsewhere
    assert ((moved >= 0) & (moved < codes)).all()
    assert torch.equal(near_miss_codes(tokens, levels, 0.0, torch.Generator()), tokens)
