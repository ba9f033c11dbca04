"""Scoring text with a model: a long stream in parallel stretches (training's validation, eval), or
documents one by one (score). Both give metrics.Loss.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UsageError
from ..model.heads import IGNORE
from ..model.network import CharRNN
from ..model.runtime import to_device
from ..pieces import Pieces, finish
from ..text.data import EOS, Vocab, describe_chars, describe_labels, document_stream, split_text
from .metrics import Loss

SCORES_PER_WINDOW = 1 << 24  # (positions x vocabulary) a window's scores may hold: 64 MB of float32
BURN_IN, MIN_STREAM, MAX_STREAMS = 256, 4096, 64  # evaluate()'s defaults


def read_overhead(n: int) -> int:
    """Characters evaluate() reads but does not score, over a text of n + 1 ids: each stretch's burn-in. A small
    sample pays it as much as the whole text does (its speed in scored characters is not the whole text's)."""
    return max(1, min(MAX_STREAMS, n // MIN_STREAM)) * BURN_IN


@torch.no_grad()
def evaluate(model: CharRNN, ids: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
             window: int = 512, burn_in: int = BURN_IN, min_stream: int = MIN_STREAM, max_streams: int = MAX_STREAMS,
             max_chars: int | None = None, shard: tuple[int, int] = (0, 1), scored_below: int | None = None) -> Loss:
    """The loss of ids[1:] given everything before (Loss: summed nats and the count scored).

    The text is cut into up to `max_streams` stretches scored in parallel with the state carried
    within each; a stretch first reads the `burn_in` characters before it (unscored), so every
    character is scored with at least that much context, as in a single carried pass. With
    `max_chars`, each stretch scores only its first max_chars / streams characters: a sample spread
    evenly over a long text. ids may be a memmap: only the windows being scored are read.
    shard (rank, size): score only every size-th stretch from rank; the shards' sums add up to the whole.
    scored_below: ids from this one up (labels: Vocab.text_size) are read but not scored, since they are given.
    """
    ids = ids.numpy() if isinstance(ids, torch.Tensor) else ids
    n = len(ids) - 1
    if n < 1:
        return Loss()
    was_training = model.training
    model.eval()
    k = max(1, min(max_streams, n // min_stream))
    bounds = np.array([c * n // k for c in range(k + 1)], dtype=np.int64)
    s, e = bounds[:-1], bounds[1:]
    if max_chars is not None and max_chars < n:
        e = np.minimum(e, s + max(1, max_chars // k))
    s, e = s[shard[0] :: shard[1]], e[shard[0] :: shard[1]]
    if len(s) == 0:
        return Loss()
    b = np.maximum(0, s - burn_in)  # each stretch reads from b, scores targets s+1 .. e
    # A large vocabulary's scores for a whole window would take GBs (64 x 512 x 6,175 floats: 0.8 GB): fewer steps.
    window = max(16, min(window, SCORES_PER_WINDOW // (len(s) * model.config.vocab_size)))
    length = e - b
    total = torch.zeros((), dtype=torch.float64, device=device)
    state, scored = None, 0
    for t in range(0, int(length.max()), window):
        j = np.arange(t, min(t + window, int(length.max())))
        valid = j[None, :] < length[:, None]
        pos = np.where(valid, b[:, None] + j[None, :], 0)
        x = torch.from_numpy(ids[pos].astype(np.int64))
        y = ids[pos + valid].astype(np.int64)  # the next id where valid (masked below where not)
        y[~valid | (j[None, :] < (s - b)[:, None])] = IGNORE  # padding and burn-in: read, not scored
        if scored_below is not None:
            y[y >= scored_below] = IGNORE
        scored += int(np.count_nonzero(y != IGNORE))
        nll, state = model(to_device(x, device), state, to_device(torch.from_numpy(y), device))
        total += nll.sum()
    model.train(was_training)
    return Loss(float(total), scored)


def score_documents(model: CharRNN, vocab: Vocab, docs: list[str], device: torch.device | str = "cpu",
                    batch: int = 256, label: str | None = None) -> list[Loss | None]:
    """The loss of each document as a whole document: from EOS, its characters, then the EOS that
    ends it; len(doc) + 1 predictions each. None for a document with characters outside the
    vocabulary (the model gives it probability zero).

    A labelled model scores a document as one of `label`'s kind (the label read after EOS, given, not
    scored); without a label, whatever its kind: -log of the sum over labels of P(label) P(document | label).
    """
    if label is not None or not vocab.labels:
        return finish(_score(model, vocab, docs, device, batch, None if label is None else vocab.label_id(label), False))
    return [None if kind is None else kind[0] for kind in score_kinds(model, vocab, docs, device, batch)]


def score_kinds(model: CharRNN, vocab: Vocab, docs: list[str], device: torch.device | str = "cpu",
                batch: int = 256) -> list[tuple[Loss, str, float] | None]:
    """A labelled model's view of each document: its loss whatever its kind (score_documents without a label), its
    likeliest label, and that label's probability given the document. None where a character is unknown."""
    return finish(_kinds(model, vocab, docs, device, batch))


def _kinds(model: CharRNN, vocab: Vocab, docs: list[str], device, batch: int) -> Pieces[list]:
    out = []
    for doc, nats in zip(docs, (yield from _label_nats(model, vocab, docs, device, batch)), strict=True):
        if nats is None:
            out.append(None)
            continue
        logp = -torch.tensor(nats, dtype=torch.float64)
        total = torch.logsumexp(logp, 0)
        best = int(logp.argmax())
        out.append((Loss(-float(total), len(doc) + 1), vocab.labels[best], float(torch.exp(logp[best] - total))))
    return out


def label_nats(model: CharRNN, vocab: Vocab, docs: list[str], device: torch.device | str = "cpu",
               batch: int = 256) -> list[list[float] | None]:
    """For each document, -log P(label, document) under each of the model's labels (in vocab.labels' order):
    the label drawn after EOS, then the document as one of its kind. None where a character is unknown."""
    return finish(_label_nats(model, vocab, docs, device, batch))


def _label_nats(model: CharRNN, vocab: Vocab, docs: list[str], device, batch: int) -> Pieces[list]:
    per_label = []
    for name in vocab.labels:
        per_label.append((yield from _score(model, vocab, docs, device, batch, vocab.label_id(name), True)))
    return [None if losses[0] is None else [loss.nll for loss in losses] for losses in zip(*per_label, strict=True)]


SCORE_CELLS = 4096  # rows x positions a pass of document scoring reads: a piece serve's other streams may wait


def _score(model: CharRNN, vocab: Vocab, docs: list[str], device, batch: int, head: int | None,
           score_head: bool) -> Pieces[list[Loss | None]]:
    """Each document as a row (EOS, `head` when given, its ids; targets: `head` if score_head, its ids, EOS) of padded
    batches, shortest with shortest, read a piece at a time (SCORE_CELLS, the state carried: it yields between
    pieces); the Loss counts the characters and EOS."""
    out: list[Loss | None] = [None] * len(docs)
    known = sorted((i for i, d in enumerate(docs) if not vocab.missing(d)), key=lambda i: len(docs[i]))
    lead = 0 if head is None else 1
    model.eval()
    for start in range(0, len(known), batch):
        idx = known[start : start + batch]
        x, y = _rows([docs[i] for i in idx], vocab, head, score_head, lead)
        window, state = max(1, SCORE_CELLS // len(idx)), None
        nll = torch.zeros(len(idx), dtype=torch.float64, device=device)
        for at in range(0, x.shape[1], window):
            if start or at:
                yield
            with torch.no_grad():
                part, state = model(x[:, at : at + window].to(device), state, y[:, at : at + window].to(device))
            nll += part.sum(1)
        for row, i in enumerate(idx):
            out[i] = Loss(float(nll[row]), len(docs[i]) + 1)
    return out


def _rows(docs: list[str], vocab: Vocab, head: int | None, score_head: bool, lead: int
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Documents as padded rows of inputs x and targets y (IGNORE where there is nothing to score)."""
    width = max(len(d) for d in docs) + 1 + lead
    x = torch.zeros(len(docs), width, dtype=torch.long)  # x[row, 0] is EOS
    y = torch.full((len(docs), width), IGNORE, dtype=torch.long)
    for row, doc in enumerate(docs):
        ids = torch.as_tensor(vocab.encode(doc))
        if head is not None:
            x[row, 1] = head
            y[row, 0] = head if score_head else IGNORE
        x[row, 1 + lead : len(ids) + 1 + lead] = ids
        y[row, lead : len(ids) + lead] = ids
        y[row, len(ids) + lead] = EOS
    return x, y


def files_as_streams(texts: list[tuple[str, str]], vocab: Vocab, lines: bool,
                     doc_sep: str | None, label: str | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, ids) per (name, text): the text cut into documents and read as training read them
    (EOS d1 EOS d2 ... EOS; a labelled model's documents as `label`'s: EOS L d1 EOS L d2 ... EOS). Every text is
    checked before any is scored: one with characters the model never saw is a UsageError naming them."""
    if vocab.labels and label is None:
        raise UsageError(f"this model was trained with labels ({describe_labels(vocab.labels)}): give --label NAME to "
                         "score the text as one of those kinds (charrnn score scores documents whatever their kind)")
    if label is not None:
        vocab.label_id(label)  # refused before any text is read
    out = []
    for name, text in texts:
        docs = split_text(text, lines, doc_sep)
        missing = [c for d in docs for c in vocab.missing(d)]
        if missing:
            raise UsageError(f"{name}: has characters the model never saw: {describe_chars(list(dict.fromkeys(missing)))}; "
                             "it can only score text made of its vocabulary")
        out.append((name, document_stream(docs, vocab, None if label is None else [label] * len(docs))))
    return out


def evaluate_files(model: CharRNN, streams: list[tuple[str, np.ndarray]], dyn=None, scored_below: int | None = None):
    """(name, loss, loss under dynamic evaluation or None) for each (name, ids) of `streams` (files_as_streams), then
    ("(all)", ...) for them together when there are several. dyn: a config.DynamicConfig to also evaluate dynamically.
    scored_below: Vocab.text_size, so that labels are read, not scored."""
    from .dynamic import dynamic_evaluate

    total, total_dyn = Loss(), Loss()
    for name, ids in streams:
        loss = evaluate(model, ids, model.device, scored_below=scored_below)
        dyn_loss = dynamic_evaluate(model, ids, dyn, scored_below) if dyn is not None else None
        total, total_dyn = total + loss, total_dyn + (dyn_loss or Loss())
        yield name, loss, dyn_loss
    if len(streams) > 1:
        yield "(all)", total, (total_dyn if dyn is not None else None)


def document_scores(model: CharRNN, vocab: Vocab, docs: list[str], label: str | None = None, dyn=None):
    """(document, loss or None, kind or None, dynamic loss or None) for each document (`charrnn score`, Model.scores):
    None for a document with characters the model never saw. A labelled model without `label` scores each document
    whatever its kind, `kind` being its likeliest label and that label's probability (score_kinds). dyn: a
    config.DynamicConfig to also score by dynamic evaluation, documents read in order (a labelled one as its label's,
    or its likeliest), each adapting the model for the next."""
    from .dynamic import Adapter

    losses, kinds = scores_and_kinds(model, vocab, docs, model.device, label)
    adapter = Adapter(model, dyn) if dyn is not None else None
    for doc, loss, kind in zip(docs, losses, kinds, strict=True):
        as_kind = label or (kind[0] if kind else None)
        dyn_loss = (adapter.document(document_stream([doc], vocab, None if as_kind is None else [as_kind]), vocab.text_size)
                    if adapter is not None and loss is not None else None)
        yield doc, loss, kind, dyn_loss


def scores_and_kinds(model: CharRNN, vocab: Vocab, docs: list[str], device: torch.device | str = "cpu",
                     label: str | None = None) -> tuple[list[Loss | None], list[tuple[str, float] | None]]:
    """Each document's loss (score_documents) and, for a labelled model without `label`, its likeliest kind (label, its
    probability given the document; score_kinds), else None. An unknown label is refused before any scoring
    (UsageError, from score_documents)."""
    return finish(scoring(model, vocab, docs, device, label))


def scoring(model: CharRNN, vocab: Vocab, docs: list[str], device: torch.device | str = "cpu",
            label: str | None = None) -> Pieces[tuple[list[Loss | None], list[tuple[str, float] | None]]]:
    """scores_and_kinds(), a piece at a time: it yields between pieces (serve's engine steps its streams meanwhile)."""
    if vocab.labels and label is None:
        found = yield from _kinds(model, vocab, docs, device, 256)
        return [f and f[0] for f in found], [f and f[1:] for f in found]
    head = None if label is None else vocab.label_id(label)  # an unknown label: refused before any scoring
    return (yield from _score(model, vocab, docs, device, 256, head, False)), [None] * len(docs)
