"""The TBPTT layout: contiguous streams, windows that join up, epochs that move the boundaries."""

import numpy as np
import torch

from charrnn.batching import Windows, epoch_layout, epoch_windows, fit_batch_shape
from charrnn.config import TrainConfig
from charrnn.run_state import Progress


def test_tbptt_windows_are_contiguous_per_stream():
    ids = torch.arange(1000)
    B, T, offset = 4, 10, 3
    x, y = epoch_layout(ids, B, T, offset)
    assert x.shape == y.shape and x.shape[1] % T == 0
    # Each row is one contiguous stretch of the stream, targets one ahead of inputs.
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)
    assert torch.equal(y, x + 1)
    # The target of a window's last position is the next window's first input.
    for w in range(x.shape[1] // T - 1):
        assert torch.equal(y[:, (w + 1) * T - 1], x[:, (w + 1) * T])
    # Rows do not overlap and start at the offset.
    assert x[0, 0] == offset
    assert torch.all(x[1:, 0] > x[:-1, -1])


def test_short_corpus_shrinks_batch_and_says_so():
    cfg, note = fit_batch_shape(500, TrainConfig(batch_size=64, seq_len=32))
    assert cfg.batch_size * cfg.seq_len + cfg.seq_len < 500 and cfg.batch_size >= 1
    assert "short" in note and "--batch-size" in note
    same, none = fit_batch_shape(10**6, TrainConfig(batch_size=32))
    assert same == TrainConfig(batch_size=32) and none == ""


def test_windows_roll_over_epochs_with_new_offsets_and_say_when_streams_restart():
    ids = np.arange(2000, dtype=np.int64)
    w = Windows(ids, streams=4, seq_len=10, mine=slice(0, 4), device=torch.device("cpu"))
    prog, gen = Progress(), torch.Generator().manual_seed(0)
    seen = []
    for _ in range(3 * w.steps_per_epoch):
        xy, restarted = w.next(prog, gen)
        assert xy.shape == (4, 11) and torch.equal(xy[:, 1:], xy[:, :-1] + 1)
        seen.append((prog.epoch, prog.offset, restarted))
        prog.window += 1
    starts = [s for s in seen if s[2]]
    assert [e for e, _, _ in starts] == sorted({e for e, _, _ in seen}) and len(starts) >= 3
    assert len({o for _, o, _ in starts}) > 1  # the offsets move between epochs
    assert all(0 <= o < 10 for _, o, _ in seen)


def test_a_rank_reads_its_own_block_of_the_worlds_streams():
    ids = np.arange(4000, dtype=np.int64)
    both = Windows(ids, streams=4, seq_len=8, mine=slice(0, 4), device=torch.device("cpu"))
    rank1 = Windows(ids, streams=4, seq_len=8, mine=slice(2, 4), device=torch.device("cpu"))
    a, _ = both.next(Progress(), torch.Generator().manual_seed(3))
    b, _ = rank1.next(Progress(), torch.Generator().manual_seed(3))
    assert torch.equal(a[2:], b)
    assert epoch_windows(4000, 4, 8, 0) == (3999 // 4) // 8
