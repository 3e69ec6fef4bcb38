"""Training data in memory (dreamworld/train/data.py): which frames the tokenizer's batches show."""

import torch

from dreamworld.train.data import frames_with_endings


def test_tokenizer_batches_show_the_frames_episodes_ended_on():
    frames, terminal = torch.arange(1000), torch.tensor([10, 500, 999])
    idx = frames_with_endings(frames, terminal, 20000, 0.25, torch.Generator().manual_seed(0))
    share = torch.isin(idx, terminal).float().mean()
    assert 0.23 < share < 0.27  # a quarter, against 0.3% for a uniform draw
    plain = frames_with_endings(frames, torch.tensor([], dtype=torch.long), 100, 0.25, torch.Generator())
    assert plain.shape == (100,)  # a dataset without endings draws uniformly
