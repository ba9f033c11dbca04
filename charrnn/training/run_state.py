"""A training run's state and records, below the loop: where it stands (Progress, saved in every checkpoint),
how it stops (StopFlag), what it reports (Reporter, TrainResult), and the files rank 0 writes beside the
checkpoints (RunFiles: best.pt and last.pt, metrics.jsonl, loss.png).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UsageError
from ..model import checkpoint as ckpt_io
from ..scoring.metrics import EvalRecord


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so --resume continues exactly."""

    step: int = 0
    epoch: int = 0
    window: int = 0  # next window of the current epoch
    offset: int = 0  # where the streams start in this epoch
    chars_seen: int = 0
    elapsed: float = 0.0  # seconds of training so far, over all sessions
    best_val: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    lr_scale: float = 1.0  # the schedule's plateau factor (schedule.Schedule.after_evaluation)
    train_loss: float = math.nan
    stopped: str = ""
    watch_s: float = 0.0  # of elapsed: evaluations, samples, checkpoints, loss.png (schedule.Watching)
    val_sample: int = 0  # validation characters each evaluation scores under --time (0: not yet measured)
    final_val: float = math.nan  # the best weights on the whole validation split (up to --eval-chars), at the end
    final_chars: int = 0  # validation characters that end-of-run score takes (schedule.Watching.plan), 0 once it
    # scored the whole split
    final_reserve: float = 0.0  # seconds of the --time budget kept for it: training stops that much sooner
    streams: int = 0  # this rank's streams when the epoch began (0: a run saved before --batch-ramp, --batch-size)
    splits: list[int] = field(default_factory=list)  # windows of this epoch where --batch-ramp doubled the streams

    def streams_now(self, batch_size: int) -> int:
        """This rank's streams at this point of the epoch: those it began with (batch_size for a run saved
        before they were recorded), doubled at each split."""
        return (self.streams or batch_size) << len(self.splits)


def end_score_split(final_chars: int) -> str:
    """What a --time run's end score covered, for messages: 'the whole validation split' or 'N characters of the
    validation split' (Progress.final_chars)."""
    return f"{final_chars:,} characters of the validation split" if final_chars else "the whole validation split"


class Reporter:
    """Receives progress events; the terminal draws them (progress.py), TensorBoard records them, the Python API's
    on_eval hears the evaluations; tests may ignore them. evaluation() may answer False to ask the run to stop after
    it, as Ctrl-C does (Progress.stopped "stopped")."""

    def start(self, info: dict) -> None: ...
    def step(self, progress: Progress, fraction: float | None, train_loss: float, chars_per_s: float, lr: float) -> None: ...
    def evaluation(self, record: EvalRecord, sample: str) -> bool | None: ...
    def message(self, text: str) -> None: ...
    def reading(self, stage: str, done_bytes: int, total_bytes: int) -> None: ...
    def end(self, summary: dict) -> None: ...
    def close(self) -> None: ...


class Relay(Reporter):
    """A reporter that passes every event on to `inner`; a subclass adds what it does with some of them."""

    def __init__(self, inner: Reporter | None = None):
        self.inner = inner or Reporter()

    def start(self, info: dict) -> None:
        self.inner.start(info)

    def step(self, progress: Progress, fraction: float | None, train_loss: float, chars_per_s: float, lr: float) -> None:
        self.inner.step(progress, fraction, train_loss, chars_per_s, lr)

    def evaluation(self, record: EvalRecord, sample: str) -> bool | None:
        return self.inner.evaluation(record, sample)

    def message(self, text: str) -> None:
        self.inner.message(text)

    def reading(self, stage: str, done_bytes: int, total_bytes: int) -> None:
        self.inner.reading(stage, done_bytes, total_bytes)

    def end(self, summary: dict) -> None:
        self.inner.end(summary)

    def close(self) -> None:
        self.inner.close()


@dataclass
class TrainResult:
    out_dir: Path
    progress: Progress
    best_val_bpc: float
    chars_per_s: float
    metrics: list[dict] = field(default_factory=list)


class StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step; a second one interrupts at once. A
    reporter may ask too (`requested` "stopped"). A run stopped so was asked to: it ends as it is, resumable."""

    SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
    ASKED = ("interrupted", "terminated", "stopped")

    def __init__(self):
        self.requested = ""
        self._old: dict = {}

    def __enter__(self):
        for sig in self.SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = self.SIGNALS[signum]

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def rng_state(gen: torch.Generator) -> dict:
    out = {"data": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(gen: torch.Generator, rng: dict) -> None:
    gen.set_state(rng["data"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


class RunFiles:
    """The files of a run's folder, written by the main process only (under torchrun, rank 0)."""

    def __init__(self, out: Path, main: bool):
        self.out, self.main = out, main

    def save(self, name: str, snapshot: dict) -> None:
        if self.main:
            ckpt_io.save_checkpoint(snapshot, self.out / name)

    def write_metrics(self, metrics: list[dict], append: EvalRecord | None = None) -> None:
        """metrics.jsonl: rewritten from the checkpoint's records at the start (a crash may have left lines
        past last.pt), then one line appended per evaluation."""
        if not self.main:
            return
        path = self.out / "metrics.jsonl"
        if append is None:
            path.write_text("".join(json.dumps(r) + "\n" for r in metrics))
        else:
            with open(path, "a") as f:
                f.write(json.dumps(append.to_dict()) + "\n")

    def draw(self, metrics: list[dict]) -> None:
        """loss.png beside the checkpoints; quietly nothing when matplotlib is missing or the image cannot be written."""
        from .plot import write_png

        if self.main:
            with contextlib.suppress(UsageError):
                write_png([(self.out.name, [EvalRecord.from_dict(m) for m in metrics])], self.out / "loss.png")
