"""on_eval, as a reporter: the Python API's view of a run's evaluations (api/training.py)."""

from __future__ import annotations

from collections.abc import Callable

from ..scoring.metrics import EvalRecord
from ..training.run_state import Relay, Reporter
from .training import Evaluation


class Watcher(Relay):
    """Passes every event on, and each evaluation to on_eval as an Evaluation; its answer False asks the run to stop."""

    def __init__(self, inner: Reporter, on_eval: Callable[[Evaluation], bool | None]):
        super().__init__(inner)
        self.on_eval = on_eval

    def evaluation(self, record: EvalRecord, sample: str) -> bool | None:
        answer = self.inner.evaluation(record, sample)
        heard = self.on_eval(Evaluation(record.step, record.epoch, record.chars_seen, record.elapsed, record.train_loss,
                                        record.lr, record.chars_per_s, record.val_loss, record.val_bpc,
                                        record.ema_val_loss, sample))
        return False if heard is False else answer
