"""What a loss is: one type for a summed negative log-likelihood, one record type for metrics.jsonl.

Every command that scores text (training's evaluation, eval, score, inspect) produces a Loss;
progress, plot, info and early stopping read its views. Bits per character are nats / ln 2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

LN2 = math.log(2)


def bits(nats: float) -> float:
    """Nats -> bits (per character, when the nats are)."""
    return nats / LN2


@dataclass(frozen=True)
class Loss:
    """Negative log-likelihood summed over `count` predictions (nats). Shards and files add up with +."""

    nll: float = 0.0
    count: int = 0

    @property
    def nats(self) -> float:
        """Mean nats per prediction (NaN when nothing was scored)."""
        return self.nll / self.count if self.count else math.nan

    @property
    def bpc(self) -> float:
        return bits(self.nats)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats)

    def __add__(self, other: Loss) -> Loss:
        return Loss(self.nll + other.nll, self.count + other.count)


@dataclass(frozen=True)
class EvalRecord:
    """One line of metrics.jsonl (and of a checkpoint's `metrics` list): the run at one evaluation.

    train_loss is the mean nats of the last steps' batches; val_loss/val_bpc are absent (None)
    for a run without validation text. Keys and rounding are part of the file format.
    """

    step: int
    epoch: int
    chars_seen: int
    elapsed: float  # seconds of training so far
    train_loss: float
    lr: float
    chars_per_s: float
    val_loss: float | None = None
    val_bpc: float | None = None
    ema_val_loss: float | None = None  # the averaged weights' validation loss (--ema)

    @classmethod
    def make(cls, *, step: int, epoch: int, chars_seen: int, elapsed: float, train_loss: float, lr: float,
             chars_per_s: float, val: Loss | None, ema_val: Loss | None = None) -> EvalRecord:
        return cls(step=step, epoch=epoch, chars_seen=chars_seen, elapsed=round(elapsed, 3),
                   train_loss=round(train_loss, 5), lr=lr, chars_per_s=round(chars_per_s, 1),
                   val_loss=None if val is None else round(val.nats, 5), val_bpc=None if val is None else round(val.bpc, 5),
                   ema_val_loss=None if ema_val is None else round(ema_val.nats, 5))

    @property
    def best_val_loss(self) -> float | None:
        """The better of the raw and the averaged weights' validation loss (None without validation)."""
        losses = [v for v in (self.val_loss, self.ema_val_loss) if v is not None]
        return min(losses) if losses else None

    @property
    def ema_is_better(self) -> bool:
        return self.ema_val_loss is not None and self.val_loss is not None and self.ema_val_loss < self.val_loss

    def to_dict(self) -> dict:
        """The record without its absent parts (no validation, no averaging)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> EvalRecord:
        """From a metrics.jsonl line or a checkpoint; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def train_bpc(self) -> float:
        return bits(self.train_loss)
