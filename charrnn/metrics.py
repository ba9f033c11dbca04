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

    @classmethod
    def make(cls, *, step: int, epoch: int, chars_seen: int, elapsed: float, train_loss: float, lr: float,
             chars_per_s: float, val: Loss | None) -> EvalRecord:
        return cls(step=step, epoch=epoch, chars_seen=chars_seen, elapsed=round(elapsed, 3),
                   train_loss=round(train_loss, 5), lr=lr, chars_per_s=round(chars_per_s, 1),
                   val_loss=None if val is None else round(val.nats, 5), val_bpc=None if val is None else round(val.bpc, 5))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k not in ("val_loss", "val_bpc")}

    @classmethod
    def from_dict(cls, d: dict) -> EvalRecord:
        """From a metrics.jsonl line or a checkpoint; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def train_bpc(self) -> float:
        return bits(self.train_loss)
