"""Scoring text with a model: a long stream in parallel stretches (training's validation, eval), or
documents one by one (score). Both give metrics.Loss.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import EOS, Vocab, describe_chars, document_stream, split_text
from .errors import UsageError
from .heads import IGNORE
from .metrics import Loss
from .model import CharRNN
from .runtime import to_device

SCORES_PER_WINDOW = 1 << 24  # (positions x vocabulary) a window's scores may hold: 64 MB of float32
BURN_IN, MIN_STREAM, MAX_STREAMS = 256, 4096, 64  # evaluate()'s defaults


def read_overhead(n: int) -> int:
    """Characters evaluate() reads but does not score, over a text of n + 1 ids: each stretch's burn-in. A small
    sample pays it as much as the whole text does (its speed in scored characters is not the whole text's)."""
    return max(1, min(MAX_STREAMS, n // MIN_STREAM)) * BURN_IN


@torch.no_grad()
def evaluate(model: CharRNN, ids: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
             window: int = 512, burn_in: int = BURN_IN, min_stream: int = MIN_STREAM, max_streams: int = MAX_STREAMS,
             max_chars: int | None = None, shard: tuple[int, int] = (0, 1)) -> Loss:
    """The loss of ids[1:] given everything before (Loss: summed nats and the count scored).

    The text is cut into up to `max_streams` stretches scored in parallel with the state carried
    within each; a stretch first reads the `burn_in` characters before it (unscored), so every
    character is scored with at least that much context, as in a single carried pass. With
    `max_chars`, each stretch scores only its first max_chars / streams characters: a sample spread
    evenly over a long text. ids may be a memmap: only the windows being scored are read.
    shard (rank, size): score only every size-th stretch from rank; the shards' sums add up to the whole.
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
    state = None
    for t in range(0, int(length.max()), window):
        j = np.arange(t, min(t + window, int(length.max())))
        valid = j[None, :] < length[:, None]
        pos = np.where(valid, b[:, None] + j[None, :], 0)
        x = torch.from_numpy(ids[pos].astype(np.int64))
        y = ids[pos + valid].astype(np.int64)  # the next id where valid (masked below where not)
        y[~valid | (j[None, :] < (s - b)[:, None])] = IGNORE  # padding and burn-in: read, not scored
        nll, state = model(to_device(x, device), state, to_device(torch.from_numpy(y), device))
        total += nll.sum()
    model.train(was_training)
    return Loss(float(total), int((e - s).sum()))


@torch.no_grad()
def score_documents(model: CharRNN, vocab: Vocab, docs: list[str], device: torch.device | str = "cpu",
                    batch: int = 256) -> list[Loss | None]:
    """The loss of each document as a whole document: from EOS, its characters, then the EOS that
    ends it; len(doc) + 1 predictions each. None for a document with characters outside the
    vocabulary (the model gives it probability zero).

    Documents are scored as independent rows of padded batches, shortest with shortest.
    """
    out: list[Loss | None] = [None] * len(docs)
    known = [i for i, d in enumerate(docs) if not vocab.missing(d)]
    known.sort(key=lambda i: len(docs[i]))
    model.eval()
    for start in range(0, len(known), batch):
        idx = known[start : start + batch]
        width = len(docs[idx[-1]]) + 1
        x = torch.zeros(len(idx), width, dtype=torch.long)
        y = torch.full((len(idx), width), IGNORE, dtype=torch.long)
        for row, i in enumerate(idx):
            ids = torch.as_tensor(vocab.encode(docs[i]))
            x[row, 1 : len(ids) + 1] = ids  # x[row, 0] is EOS
            y[row, : len(ids)] = ids
            y[row, len(ids)] = EOS
        nll = model(x.to(device), None, y.to(device))[0].sum(1)
        for row, i in enumerate(idx):
            out[i] = Loss(float(nll[row]), len(docs[i]) + 1)
    return out


def files_as_streams(texts: list[tuple[str, str]], vocab: Vocab, lines: bool,
                     doc_sep: str | None) -> list[tuple[str, np.ndarray]]:
    """(name, ids) per (name, text): the text cut into documents and read as training read them
    (EOS d1 EOS d2 ... EOS). Every text is checked before any is scored: one with characters the
    model never saw is a UsageError naming them."""
    out = []
    for name, text in texts:
        docs = split_text(text, lines, doc_sep)
        missing = [c for d in docs for c in vocab.missing(d)]
        if missing:
            raise UsageError(f"{name}: has characters the model never saw: {describe_chars(list(dict.fromkeys(missing)))}; "
                             "it can only score text made of its vocabulary")
        out.append((name, document_stream(docs, vocab)))
    return out


def evaluate_files(model: CharRNN, streams: list[tuple[str, np.ndarray]], dyn=None):
    """(name, loss, loss under dynamic evaluation or None) for each (name, ids) of `streams` (files_as_streams), then
    ("(all)", ...) for them together when there are several. dyn: a config.DynamicConfig to also evaluate dynamically."""
    from .dynamic import dynamic_evaluate

    total, total_dyn = Loss(), Loss()
    for name, ids in streams:
        loss = evaluate(model, ids, model.device)
        dyn_loss = dynamic_evaluate(model, ids, dyn) if dyn is not None else None
        total, total_dyn = total + loss, total_dyn + (dyn_loss or Loss())
        yield name, loss, dyn_loss
    if len(streams) > 1:
        yield "(all)", total, (total_dyn if dyn is not None else None)

