"""The TBPTT layout: contiguous streams, windows that join up, epochs that move the boundaries."""

import dataclasses

import numpy as np
import pytest
import torch

from charrnn.training.batching import Windows, epoch_layout, epoch_windows, fit_batch_shape
from charrnn.training.config import TrainConfig
from charrnn.training.run_state import Progress
from charrnn.training.schedule import BatchRamp


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
    w = Windows(ids, rows=4, seq_len=10, rank=0, ranks=1, device=torch.device("cpu"))
    prog, gen = Progress(), torch.Generator().manual_seed(0)
    seen = []
    for _ in range(3 * w.steps_per_epoch):
        xy, restarted, _ = w.next(prog, gen)
        assert xy.shape == (4, 11) and torch.equal(xy[:, 1:], xy[:, :-1] + 1)
        seen.append((prog.epoch, prog.offset, restarted))
        prog.window += 1
    starts = [s for s in seen if s[2]]
    assert [e for e, _, _ in starts] == sorted({e for e, _, _ in seen}) and len(starts) >= 3
    assert len({o for _, o, _ in starts}) > 1  # the offsets move between epochs
    assert all(0 <= o < 10 for _, o, _ in seen)


def test_a_rank_reads_its_own_block_of_the_worlds_streams():
    ids = np.arange(4000, dtype=np.int64)
    both = Windows(ids, rows=4, seq_len=8, rank=0, ranks=1, device=torch.device("cpu"))
    rank1 = Windows(ids, rows=2, seq_len=8, rank=1, ranks=2, device=torch.device("cpu"))
    a, _, _ = both.next(Progress(), torch.Generator().manual_seed(3))
    b, _, _ = rank1.next(Progress(), torch.Generator().manual_seed(3))
    assert torch.equal(a[2:], b)
    assert epoch_windows(4000, 4, 8, 0) == (3999 // 4) // 8


def test_the_ramp_doubles_the_streams_at_equal_shares_of_the_budget():
    ramp = BatchRamp(16, 64)
    assert [ramp.streams(f) for f in (None, 0.0, 0.3, 0.34, 0.66, 0.67, 1.0)] == [16, 16, 16, 32, 32, 64, 64]
    assert ramp.lr_factor(16, 32) == pytest.approx(0.5 ** 0.5) and ramp.lr_factor(64, 32) == pytest.approx(2 ** 0.5)


def test_doubled_streams_split_what_is_left_and_read_nothing_twice():
    ids = np.arange(5000, dtype=np.int64)
    w = Windows(ids, rows=2, seq_len=10, rank=0, ranks=1, device=torch.device("cpu"))
    prog, gen = Progress(), torch.Generator().manual_seed(1)
    read, rows = [], []
    while True:
        xy, restarted, grew = w.next(prog, gen, rows=2 if prog.window < 30 else 4 if prog.window < 50 else 8)
        if restarted and prog.epoch > 0:
            break
        assert grew == (prog.window in (30, 50)) and torch.equal(xy[:, 1:], xy[:, :-1] + 1)
        if grew:  # the old streams read on where they were; each new one from half of what its old one had left
            assert torch.equal(xy[: len(rows[-1]), -1], rows[-1] + 10)
        rows.append(xy[:, -1])
        read += xy[:, :-1].flatten().tolist()
        prog.window += 1
    assert len(read) == len(set(read)) > 0.9 * 5000  # every input read once, nearly all of the text
    assert prog.splits == [] and prog.streams == 8  # the new epoch begins with the streams the ramp is at


def test_a_resumed_run_rebuilds_the_doubled_streams():
    ids = np.arange(5000, dtype=np.int64)
    a = Windows(ids, rows=2, seq_len=10, rank=0, ranks=1, device=torch.device("cpu"))
    prog, gen = Progress(), torch.Generator().manual_seed(1)
    for _ in range(45):
        a.next(prog, gen, rows=2 if prog.window < 20 else 4 if prog.window < 40 else 8)
        prog.window += 1
    assert prog.splits == [20, 40] and prog.streams == 2 and prog.streams_now(batch_size=2) == a.rows == 8
    b = Windows(ids, rows=2, seq_len=10, rank=0, ranks=1, device=torch.device("cpu"))
    saved = Progress(**dataclasses.asdict(prog))
    assert torch.equal(b.next(saved, gen, rows=8)[0], a.next(prog, gen, rows=8)[0])
