"""Writing, as the Python API hands it out: whole samples (Sample) and samples as they are written (TextStream).

Samples drawn together run as one batch (writing.sample.Sampler); a TextStream reads one of them out while the
batch runs, and what the others draw meanwhile waits in their buffers, so n streams read one after another show
each sample as it is made and cost one batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..writing.sample import Sampler


@dataclass(frozen=True)
class Sample:
    """One sample: `text` is the new text (the prime not included); `ended` says why it ended: "eos" (the model
    ended the document), "stop" (a stop string; the text ends before it unless keep_stop), or "length".

    seed: the seed the draw used (None for beam search, which draws nothing); label: the kind it was written as,
    for a model trained with labels; logprob: beam search's log-probability of text given the prime, in nats.
    """

    text: str
    prime: str
    ended: str
    seed: int | None
    label: str | None = None
    logprob: float | None = None


class _Batch:
    """One batch of samples being drawn, read out sample by sample: each sample's drawn characters (and their
    probabilities, when asked) wait in its buffer until it is read."""

    def __init__(self, sampler: Sampler, n: int):
        self.sampler = sampler
        self.events = sampler.events()
        self.pending: list[deque[tuple[str, float | None]]] = [deque() for _ in range(n)]
        self.done = [False] * n

    def pull(self) -> None:
        """Draw the batch's next event into its sample's buffer; at the batch's end every sample is done."""
        event = next(self.events, None)
        if event is None:
            self.done = [True] * len(self.done)
            return
        i, ch = event[0], event[1]
        if ch is None:
            self.done[i] = True
        else:
            self.pending[i].append((ch, event[2] if len(event) > 2 else None))


class TextStream(Iterator[str]):
    """One sample as it is written. Iterate it for the text, a piece at a time (usually a character; a stop string's
    first characters come out together once they turn out not to be one); `ended` and `label` are known once it is
    done. `text()` reads the rest at once.

    A stream reads its sample once: iterating it again gives nothing more.
    """

    def __init__(self, batch: _Batch, index: int, prime: str, seed: int):
        self._batch, self._index = batch, index
        self.prime, self.seed = prime, seed
        self._texts: Iterator[str] | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._texts is None:
            self._texts = (text for text, _ in self.pieces())
        return next(self._texts)

    def pieces(self) -> Iterator[tuple[str, float | None]]:
        """(character, its probability) as they are drawn: the model's probability at the sampling temperature, before
        top-k/top-p (None unless the streams were made with probs=True)."""
        batch, i = self._batch, self._index
        while True:
            while batch.pending[i]:
                yield batch.pending[i].popleft()
            if batch.done[i]:
                return
            batch.pull()

    def text(self) -> str:
        """The rest of the sample, whole."""
        return "".join(self)

    @property
    def ended(self) -> str | None:
        """Why the sample ended ("eos", "stop" or "length"), None while it runs."""
        return self._batch.sampler.ended.get(self._index)

    @property
    def label(self) -> str | None:
        """The kind the sample is written as (a labelled model's), once its first character is drawn; else None."""
        labels = self._batch.sampler.labels
        return labels[self._index] if labels else None


def streams_of(sampler: Sampler, prime: str, seed: int) -> list[TextStream]:
    """The samples of one batch, as streams read in order."""
    batch = _Batch(sampler, sampler.cfg.num_samples)
    return [TextStream(batch, i, prime, seed) for i in range(sampler.cfg.num_samples)]
