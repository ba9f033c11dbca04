"""The TBPTT layout: the training text as `streams` contiguous rows, read a window of seq_len at a time.

    text:    [ stream 0 ......... | stream 1 ......... | ... | stream B-1 ....... ]
    window w of each stream:  ids[start_b + w*T : start_b + (w+1)*T + 1]   (inputs [:-1], targets [1:])

The target of one window's last position is the next window's first input, so the hidden state
carries over (detached) from window to window. Each epoch the streams start at a new random offset
in [0, T), so window boundaries move between epochs, and the state is reset. Under torchrun a
rank owns a contiguous block of the world's streams.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..errors import UsageError
from .config import TrainConfig


def fits(n_train: int, batch: int, seq_len: int) -> bool:
    """Whether an epoch of `batch` streams over n_train training ids holds a window of seq_len, with room left
    for the epoch's random offset (up to seq_len)."""
    return n_train - 1 - seq_len >= batch * seq_len


def fit_batch_shape(n_train: int, cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """Shrink batch_size (then seq_len) so that one epoch holds at least one window.

    Returns the config to use and a note saying what changed ("" when nothing did).
    One window needs batch_size * seq_len + 1 training characters.
    """
    if fits(n_train, cfg.batch_size, cfg.seq_len):
        return cfg, ""
    usable = n_train - 1 - cfg.seq_len  # leave room for the epoch's random offset
    if n_train < 3:
        raise UsageError(f"the training text is too short ({n_train} ids); give at least a few characters of text")
    seq_len = cfg.seq_len
    batch = max(1, usable // seq_len) if usable > 0 else 1
    if usable < seq_len:
        seq_len = max(1, (n_train - 1) // 2)
        batch = 1
    new = replace(cfg, batch_size=batch, seq_len=seq_len)
    return new, (
        f"corpus is short ({n_train - 1:,} training chars): using --batch-size {batch} --seq-len {seq_len} "
        f"instead of {cfg.batch_size} x {cfg.seq_len}"
    )


def epoch_windows(n_train: int, batch: int, seq_len: int, offset: int) -> int:
    """Number of full windows per stream in an epoch whose streams start at `offset`."""
    return ((n_train - 1 - offset) // batch) // seq_len


def stream_starts(n_train: int, batch: int, seq_len: int, offset: int) -> np.ndarray:
    """Where each of the `batch` streams of an epoch starts (int64, (batch,)): contiguous stretches from `offset`."""
    stride = (n_train - 1 - offset) // batch
    return np.arange(batch, dtype=np.int64) * stride + offset


def window_ids(ids: np.ndarray, starts: np.ndarray, window: int, seq_len: int) -> np.ndarray:
    """Window `window` of every stream: (len(starts), seq_len + 1) int64 ids, read from `ids` (an array or a memmap).

    Row b holds ids[starts[b] + window * seq_len ...] for seq_len + 1 positions: inputs are
    [:, :-1], targets [:, 1:], so the target of one window's last position is the next window's
    first input. Only these positions are read, so a corpus on disk is never loaded whole.
    """
    idx = starts[:, None] + (window * seq_len + np.arange(seq_len + 1))[None, :]
    return ids[idx].astype(np.int64)


def epoch_layout(train_ids, batch: int, seq_len: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole epoch's inputs and targets (batch, windows * seq_len), as the windows deliver them (for tests)."""
    ids = np.asarray(train_ids)
    starts = stream_starts(len(ids), batch, seq_len, offset)
    windows = [window_ids(ids, starts, w, seq_len) for w in range(epoch_windows(len(ids), batch, seq_len, offset))]
    x = np.concatenate([w[:, :-1] for w in windows], axis=1)
    y = np.concatenate([w[:, 1:] for w in windows], axis=1)
    return torch.from_numpy(x), torch.from_numpy(y)


class Windows:
    """This rank's training windows, epoch after epoch; the position lives in the run's Progress (epoch, window,
    offset; under --batch-ramp the streams the epoch began with and the windows where they doubled), so a resumed
    run reads on exactly where it stopped.

    ids: the training stream (an array or a memmap); rows: this rank's streams (it owns block `rank` of the world's
    rows x ranks contiguous streams).
    """

    def __init__(self, ids: np.ndarray, rows: int, seq_len: int, rank: int, ranks: int, device: torch.device):
        self.ids, self.rows, self.seq_len, self.rank, self.ranks, self.device = ids, rows, seq_len, rank, ranks, device
        self.pin = device.type == "cuda"  # page-locked copies let the host-to-GPU transfer run asynchronously
        self.starts: np.ndarray | None = None
        self.end: int | None = None  # the window the epoch ends at, once its streams doubled

    @property
    def steps_per_epoch(self) -> int:
        """Windows in an epoch of the average offset (seq_len / 2), at the streams read now."""
        return epoch_windows(len(self.ids), self.rows * self.ranks, self.seq_len, self.seq_len // 2)

    def _starts(self, offset: int) -> np.ndarray:
        mine = slice(self.rank * self.rows, (self.rank + 1) * self.rows)
        return stream_starts(len(self.ids), self.rows * self.ranks, self.seq_len, offset)[mine]

    def _epoch_end(self, offset: int) -> int:
        return self.end if self.end is not None else epoch_windows(len(self.ids), self.rows * self.ranks, self.seq_len,
                                                                   offset)

    def _split(self, window: int, offset: int) -> bool:
        """Double the streams at `window`: each hands the second half of the windows it has left to a new stream, the
        new ones after the old in the batch; False when a stream has less than two windows left."""
        half = (self._epoch_end(offset) - window) // 2
        if half < 1:
            return False
        self.starts = np.concatenate([self.starts, self.starts + half * self.seq_len])
        self.end, self.rows = window + half, self.rows * 2
        return True

    def _resume(self, progress) -> None:
        """The streams of the epoch a resumed run stopped in: as it began (Progress.streams), each doubling replayed."""
        self.rows = progress.streams or self.rows
        self.starts, self.end = self._starts(progress.offset), None
        for window in progress.splits:
            self._split(window, progress.offset)

    def next(self, progress, gen: torch.Generator, rows: int | None = None) -> tuple[torch.Tensor, bool, bool]:
        """The window at `progress` ((rows, seq_len + 1) ids on the device), whether the streams restarted (which
        resets their state), and whether they doubled (the new streams, last in the batch, start from a zero state).

        rows: the streams to read (--batch-ramp), else as they are. A new epoch starts with that many and draws its
        offset from `gen`; mid-epoch, more rows double the streams (each at most once a step)."""
        restarted = grew = False
        if self.starts is None and progress.window > 0:  # resumed mid-epoch: that epoch's streams
            self._resume(progress)
        if self.starts is None or progress.window >= self._epoch_end(progress.offset):
            if self.starts is not None:
                progress.epoch += 1
            progress.window = 0
            progress.offset = int(torch.randint(0, self.seq_len, (1,), generator=gen))
            self.rows = rows or self.rows
            progress.streams, progress.splits = self.rows, []
            self.starts, self.end = self._starts(progress.offset), None
            restarted = True
        elif rows and rows > self.rows and self._split(progress.window, progress.offset):
            progress.splits.append(progress.window)
            grew = True
        xy = torch.from_numpy(window_ids(self.ids, self.starts, progress.window, self.seq_len))
        return (xy.pin_memory() if self.pin else xy).to(self.device, non_blocking=True), restarted, grew
