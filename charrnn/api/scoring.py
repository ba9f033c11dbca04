"""Scores, as the Python API hands them out: one text's (Score) and one file's (FileScore), with the JSON records
`charrnn score --json`, `charrnn eval --json` and serve's /v1/score write of them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..scoring.metrics import Loss


@dataclass(frozen=True)
class Score:
    """How typical one text is to the model, read as a whole document (EOS, the text, EOS).

    nats: per prediction, the document's end included (len(text) + 1 predictions); bpc the same in bits. A text
    with characters the model never saw cannot be read: nats and bpc are inf, logprob is None and `unknown` names
    them. For a model trained with labels scored without one: the text's loss whatever its kind, and `label`, its
    likeliest kind, with `label_p`, that kind's probability given the text. dynamic_nats: scored by dynamic
    evaluation (the model learning as it reads), when asked.
    """

    text: str
    nats: float
    bpc: float
    logprob: float | None
    predictions: int
    unknown: tuple[str, ...] = ()
    label: str | None = None
    label_p: float | None = None
    dynamic_nats: float | None = None
    dynamic_bpc: float | None = None

    @classmethod
    def of(cls, text: str, loss: Loss | None, unknown: list[str], kind: tuple[str, float] | None = None,
           dynamic: Loss | None = None) -> Score:
        return cls(text=text, nats=math.inf if loss is None else loss.nats, bpc=math.inf if loss is None else loss.bpc,
                   logprob=None if loss is None else -loss.nll, predictions=len(text) + 1, unknown=tuple(unknown),
                   label=kind[0] if kind else None, label_p=kind[1] if kind else None,
                   dynamic_nats=None if dynamic is None else dynamic.nats,
                   dynamic_bpc=None if dynamic is None else dynamic.bpc)

    def record(self) -> dict[str, Any]:
        """The JSON record (score --json, serve's /v1/score): bpc and logprob rounded, None with `unknown` listed for
        a text the model cannot read, the likeliest label and its probability where there is one."""
        readable = self.logprob is not None
        record: dict[str, Any] = {"text": self.text, "bpc": round(self.bpc, 5) if readable else None,
                                  "logprob": None if self.logprob is None else round(self.logprob, 5),
                                  "predictions": self.predictions}
        if not readable:
            record["unknown"] = list(self.unknown)
        if self.label is not None:
            record["label"], record["label_p"] = self.label, round(self.label_p or 0.0, 5)
        return record


@dataclass(frozen=True)
class FileScore:
    """One file's loss (or "(all)": the files together), cut into documents as the model's corpus was.

    nats and bpc: per character scored (the end of each document counted); perplexity: e ** nats; scored: the
    characters scored; dynamic_nats: under dynamic evaluation, when asked."""

    name: str
    nats: float
    bpc: float
    perplexity: float
    scored: int
    dynamic_nats: float | None = None
    dynamic_bpc: float | None = None

    @classmethod
    def of(cls, name: str, loss: Loss, dynamic: Loss | None = None) -> FileScore:
        return cls(name=name, nats=loss.nats, bpc=loss.bpc, perplexity=loss.perplexity, scored=loss.count,
                   dynamic_nats=None if dynamic is None else dynamic.nats,
                   dynamic_bpc=None if dynamic is None else dynamic.bpc)

    def record(self) -> dict[str, Any]:
        """The JSON record of `charrnn eval --json`."""
        record: dict[str, Any] = {"file": self.name, "nats_per_char": round(self.nats, 6), "bpc": round(self.bpc, 6),
                                  "perplexity": round(self.perplexity, 6), "scored": self.scored}
        if self.dynamic_nats is not None and self.dynamic_bpc is not None:
            record.update(dynamic_nats_per_char=round(self.dynamic_nats, 6), dynamic_bpc=round(self.dynamic_bpc, 6))
        return record
