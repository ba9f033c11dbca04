"""`train --tensorboard`: a run's curves and samples as TensorBoard event files in <run>/tb, written through
torch's own writer (torch.utils.tensorboard.SummaryWriter, which needs the `tensorboard` package: the optional
extra charrnn[tensorboard]). View them with `tensorboard --logdir checkpoints/`: each run is one.

TensorBoardReporter forwards every event to the reporter it wraps (the terminal's) and writes, against the step:
    train/loss (nats), train/lr, train/chars_per_s          every LOG_EVERY steps
    val/loss, val/bpc; val/ema_loss, val/ema_bpc (--ema)     at each evaluation, with the sample as text (val/sample)
    val/whole_split                                          when a --time run scores the whole split at the end

A resumed run continues the same curves: its writer purges what was logged after the step its last.pt holds (a
run stopped between an evaluation and its checkpoint logged some), so no step appears twice. Under torchrun only
rank 0 holds one; the other ranks report to nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import UsageError
from ..scoring.metrics import EvalRecord, bits
from .run_state import Relay, Reporter

TB_DIR = "tb"
# Steps between training scalars, at its multiples (a resumed run keeps the grid). The training loss is a mean
# over the steps between host syncs (trainer.SYNC_EVERY, also 10): logging it more often would repeat it.
LOG_EVERY = 10


def writer_class() -> type:
    """torch's SummaryWriter; UsageError naming the package to install where tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard (or pip install "
                         "'charrnn[tensorboard]'), or leave --tensorboard out") from None
    return SummaryWriter


class TensorBoardReporter(Relay):
    """Reports to `inner` and to event files in the run directory's tb/ (opened at the first scalar, after every
    check has passed and the run directory exists). Raises UsageError at once when tensorboard is missing."""

    def __init__(self, inner: Reporter | None = None):
        super().__init__(inner)
        self.writer_class = writer_class()
        self.writer = None
        self.log_dir: Path | None = None
        self.purge_step: int | None = None

    def _writer(self):
        if self.writer is None:
            self.writer = self.writer_class(log_dir=str(self.log_dir), purge_step=self.purge_step)
        return self.writer

    def start(self, info: dict) -> None:
        self.inner.start(info)
        self.log_dir = Path(info["out"]) / TB_DIR
        resumed = info.get("resumed_at")
        # Events at steps after the checkpoint's were logged by a session whose state was lost: hide them.
        self.purge_step = None if resumed is None else resumed + 1

    def step(self, progress, fraction, train_loss: float, chars_per_s: float, lr: float) -> None:
        self.inner.step(progress, fraction, train_loss, chars_per_s, lr)
        if progress.step % LOG_EVERY or not math.isfinite(train_loss):
            return
        w, step = self._writer(), progress.step
        w.add_scalar("train/loss", train_loss, step)
        w.add_scalar("train/lr", lr, step)
        w.add_scalar("train/chars_per_s", chars_per_s, step)

    def evaluation(self, record: EvalRecord, sample: str) -> bool | None:
        answer = self.inner.evaluation(record, sample)
        w, step = self._writer(), record.step
        for tag, nats in (("val/loss", record.val_loss), ("val/ema_loss", record.ema_val_loss)):
            if nats is not None:
                w.add_scalar(tag, nats, step)
                w.add_scalar(tag.replace("loss", "bpc"), bits(nats), step)
        if sample:
            # Markdown would reflow the sample's lines; four spaces keep it as the model wrote it.
            w.add_text("val/sample", "\n".join("    " + line for line in sample.split("\n")), step)
        w.flush()
        return answer

    def end(self, summary: dict) -> None:
        progress = summary["progress"]
        if self.log_dir is not None and math.isfinite(progress.final_val):
            self._writer().add_scalar("val/whole_split", progress.final_val, progress.step)
        self._close()
        self.inner.end(summary)

    def close(self) -> None:
        self._close()
        self.inner.close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
