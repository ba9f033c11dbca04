"""Beam search: the likeliest continuations of a prime, not random ones (`sample --beam K`).

A hypothesis is a continuation with its log-probability under the model (temperature 1), the sum of
log p over every character the model wrote, EOS included. Each step extends every live hypothesis by
every character and keeps the K likeliest extensions of all (K x V candidates); an extension that
draws EOS, or completes a stop string, is finished there (and its slot spent), the others go on.
After `length` characters the live ones are finished too ("length"). The search stops early once
the n best finished are at least as likely as every live one, since a log-probability only falls
as a text grows.

So K = 1 is greedy decoding, exactly, and a K large enough to keep every candidate is exhaustive
search. A larger K may still miss a path that a smaller one kept (beam search is not monotone), so
the greedy continuation is always searched beside the beams and competes with them: the best
answer is never less likely than greedy's.

The first character is never EOS: an empty continuation answers nothing (without a prime, a document
is never empty, as in sampling; with one, ending the document at once is often the likeliest thing of
all, and says nothing). The text returned ends before a stop string (or with it, keep_stop); the
log-probability counts the stop string's characters, which the model wrote.

A labelled model searches documents of one kind: the label asked for, else the likeliest given the prime
(sample.start); the log-probability is the continuation's given that kind.

Under a constraint (--regex, --allow, --ban: constraint.py) every extension that cannot lead to a match in the
length left is dropped, so the search finds the likeliest texts that match; their log-probabilities are still the
model's, unrenormalised. A stop string ends a hypothesis only where the text it leaves matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ..errors import UsageError
from ..model.network import CharRNN, select_state
from ..text.data import EOS, Vocab
from .config import SampleConfig
from .constraint import Constraint, constraint_for
from .sample import start, text_step


def check_beam_flags(beam: int | None, **flags: bool) -> None:
    """UsageError naming a sampling flag (given as True in `flags`, e.g. novel=True) that beam search does not take."""
    given = [name for name, on in flags.items() if on]
    if beam and given:
        raise UsageError(f"--beam finds the likeliest continuations: --{given[0]} does not apply to them; leave it out")


@dataclass(frozen=True)
class Hypothesis:
    text: str  # the continuation, without the prime, cut before a stop string unless keep_stop
    logprob: float  # nats: the sum of log p over the characters written (EOS and stop string included)
    ended: str  # "eos", "stop" or "length"
    label: str | None = None  # the kind of document searched: --label, else the likeliest given the prime


@dataclass
class _Live:
    """The live hypotheses of one step: their texts, ids just written (B,), log-probabilities (B,), and under a
    constraint its states after them (B,)."""

    texts: list[str]
    ids: torch.Tensor
    scores: torch.Tensor
    states: torch.Tensor | None = None


def beam_search(model: CharRNN, vocab: Vocab, prime: str, cfg: SampleConfig, device: torch.device | str = "cpu",
                cancelled: Callable[[], bool] = lambda: False) -> list[Hypothesis]:
    """The cfg.num_samples likeliest distinct continuations found by cfg.beam beams and by greedy decoding, most
    likely first (fewer when there are not as many distinct ones). Uses cfg.length, cfg.stop, cfg.keep_stop.
    cancelled() is asked every step (serve: the client went away); when it says so, the search ends with []."""
    width = cfg.beam or 1
    constraint = constraint_for(cfg, vocab, prime, torch.device(device))
    found = _search(model, vocab, prime, cfg, width, device, cancelled, constraint)
    if width > 1:
        found += _search(model, vocab, prime, cfg, 1, device, cancelled, constraint)
    if cancelled():
        return []
    return _best_distinct(found, cfg.num_samples)


def _best_distinct(found: list[Hypothesis], n: int) -> list[Hypothesis]:
    """The n likeliest of `found` with distinct texts (each text's likeliest), most likely first."""
    best: dict[str, Hypothesis] = {}
    for h in sorted(found, key=lambda h: -h.logprob):
        best.setdefault(h.text, h)
    return list(best.values())[:n]


@torch.inference_mode()
def _search(model: CharRNN, vocab: Vocab, prime: str, cfg: SampleConfig, width: int, device: torch.device | str,
            cancelled: Callable[[], bool], constraint: Constraint | None = None) -> list[Hypothesis]:
    was_training = model.training
    model.eval()
    try:
        logits, state, labels = start(model, vocab, prime, 1, torch.device(device), cfg.label, greedy=True)
        found = _steps(model, vocab, cfg, width, logits, state, cancelled, constraint)
        return [replace(h, label=labels[0]) for h in found] if labels else found
    finally:
        model.train(was_training)


def _steps(model: CharRNN, vocab: Vocab, cfg: SampleConfig, width: int, logits: torch.Tensor, state,
           cancelled: Callable[[], bool], constraint: Constraint | None = None) -> list[Hypothesis]:
    """The search from the prime's scores and state (sample.start) for up to cfg.length characters."""
    device = logits.device
    live = _Live([""], torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.float64, device=device),
                 None if constraint is None else torch.full((1,), constraint.start, device=device))
    finished: list[Hypothesis] = []
    for step in range(cfg.length):
        logp = torch.log_softmax(logits.double(), dim=-1)
        if step == 0:  # an empty continuation answers nothing (and without a prime, no document is empty)
            logp[:, EOS] = -math.inf
        if constraint is not None:
            logp = logp + constraint.mask(live.states, cfg.length - step)
        live, parents, done = _extend(live, logp, width, vocab, cfg, constraint)
        # Only the n best distinct can be answered, and later ones only push them out: keep no more, so that
        # each step's bookkeeping stays small however long the search runs.
        finished = _best_distinct(finished + done, cfg.num_samples)
        if not live.texts or _settled(finished, live, cfg.num_samples) or cancelled():
            return finished
        state = select_state(state, parents)
        logits, state = text_step(model, vocab, live.ids, state)
    return finished + [Hypothesis(t, float(s), "length") for t, s in zip(live.texts, live.scores.tolist(), strict=True)]


def _extend(live: _Live, logp: torch.Tensor, width: int, vocab: Vocab, cfg: SampleConfig,
            constraint: Constraint | None = None) -> tuple[_Live, torch.Tensor, list[Hypothesis]]:
    """The `width` likeliest one-character extensions of `live` (logp (B, V): each one's next-character log-probs):
    those that go on, the rows of `live` they extend, and those finished by EOS or a stop string."""
    vocab_size = logp.shape[-1]
    candidates = (live.scores[:, None] + logp).flatten()
    top, flat = torch.topk(candidates, min(width, int(torch.isfinite(candidates).sum())))
    going: list[tuple[str, int, int, float]] = []  # (text, id, parent, log-probability)
    finished: list[Hypothesis] = []
    for score, index in zip(top.tolist(), flat.tolist(), strict=True):
        parent, char_id = divmod(index, vocab_size)
        if char_id == EOS:
            finished.append(Hypothesis(live.texts[parent], score, "eos"))
            continue
        text = live.texts[parent] + vocab.chars[char_id - 1]
        # Earlier text held none that could end it: it ends here if at all, where what it leaves matches.
        stop = next((s for s in cfg.stop if text.endswith(s)
                     and (constraint is None or constraint.matches(text if cfg.keep_stop else text[: -len(s)]))), None)
        if stop is None:
            going.append((text, char_id, parent, score))
        else:
            finished.append(Hypothesis(text if cfg.keep_stop else text[: -len(stop)], score, "stop"))
    device = logp.device
    ids, parents = (torch.tensor([g[i] for g in going], dtype=torch.long, device=device) for i in (1, 2))
    states = None if constraint is None else constraint.advance(live.states.index_select(0, parents), ids)
    new = _Live([g[0] for g in going], ids, torch.tensor([g[3] for g in going], dtype=torch.float64, device=device),
                states)
    return new, parents, finished


def _settled(finished: list[Hypothesis], live: _Live, n: int) -> bool:
    """Whether the n best finished hypotheses (`finished`, likeliest first) are at least as likely as every live one
    (which can only fall)."""
    return len(finished) >= n and finished[n - 1].logprob >= float(live.scores.max())  # finished: likeliest first
