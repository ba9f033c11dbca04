"""Sampling: feed the prime through the network once, then draw one character at a time with the state carried.

Nothing is recomputed over the context: each step runs the recurrent cell once per stream.
Several samples run as one batch; a stream that draws EOS leaves the batch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import UsageError
from ..model.cells import State
from ..model.network import CharRNN, select_state
from ..pieces import Pieces, finish
from ..text.data import EOS, Vocab, describe_chars, doc_hash, read_text
from .config import SampleConfig
from .constraint import constraint_for


class Rule:
    """One way to narrow the draw, active when its SampleConfig setting is given: it may mask the
    tempered logits (B, V) before the softmax, or zero probabilities (B, V) after it. A new rule is a
    subclass listed in RULES, and its setting in config.SampleConfig (which makes the flag)."""

    def active(self, cfg: SampleConfig) -> bool:
        raise NotImplementedError

    def logits(self, logits: torch.Tensor, cfg: SampleConfig) -> torch.Tensor:
        return logits

    def probs(self, probs: torch.Tensor, cfg: SampleConfig) -> torch.Tensor:
        return probs


class TopK(Rule):
    """--top-k K: only the K likeliest characters."""

    def active(self, cfg):
        return cfg.top_k is not None

    def logits(self, logits, cfg):
        if cfg.top_k >= logits.shape[-1]:
            return logits
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]
        return logits.masked_fill(logits < kth, -math.inf)


class TopP(Rule):
    """--top-p P (nucleus): the smallest set of likeliest characters whose mass reaches P."""

    def active(self, cfg):
        return cfg.top_p is not None and cfg.top_p < 1

    def probs(self, probs, cfg):
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Drop a character when the mass before it already reaches top_p.
        drop = (sorted_p.cumsum(-1) - sorted_p) >= cfg.top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        return torch.zeros_like(probs).scatter_(-1, order, sorted_p)


RULES: tuple[Rule, ...] = (TopK(), TopP())


@functools.lru_cache(maxsize=64)
def active_rules(cfg: SampleConfig) -> tuple[Rule, ...]:
    """The rules a config asks for, found once per config: next_ids runs once per character."""
    return tuple(rule for rule in RULES if rule.active(cfg))


def draw_probs(logits: torch.Tensor, cfg: SampleConfig) -> torch.Tensor:
    """logits (B, V) -> what a draw takes from (B, V) float32: softmax at the temperature after every RULES
    filter (unnormalised where top-p zeroed some: the draw scales by the row's total)."""
    rules = active_rules(cfg)
    logits = logits.float() / cfg.temperature
    for rule in rules:
        logits = rule.logits(logits, cfg)
    probs = torch.softmax(logits, dim=-1)
    for rule in rules:
        probs = rule.probs(probs, cfg)
    return probs


def next_ids(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator | None,
             u: torch.Tensor | None = None) -> torch.Tensor:
    """logits (B, V) -> drawn ids (B,): argmax with greedy, else a draw at the temperature after every RULES filter.

    The draw takes one uniform number per row: u (B, 1) float32 when given (serve draws each request's
    rows from its own generator), else torch.rand from `generator`; the same numbers give the same ids."""
    if cfg.greedy:
        return logits.argmax(dim=-1)
    probs = draw_probs(logits, cfg)
    # Inverse CDF: one uniform number per stream, where torch.multinomial costs several times more
    # per call on small batches (and sampling makes a call per character).
    cdf = probs.cumsum(dim=-1)
    if u is None:
        u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    drawn = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1).clamp_max_(probs.shape[-1] - 1)
    # Rounding can land on the flat end of the CDF past the last allowed character (p = 0):
    # never emit a character that top-k/top-p excluded.
    allowed = probs.gather(1, drawn[:, None]).squeeze(-1) > 0
    return torch.where(allowed, drawn, probs.argmax(dim=-1))


def check_prime(vocab: Vocab, prime: str, skip_unknown: bool = False, name: str = "--prime",
                fix: str = "remove them or pass --skip-unknown", label: str | None = None) -> str:
    """The prime to use: with skip_unknown, without the characters the model never saw; else the prime,
    refused (a UsageError naming them, the option `name` and the `fix`) if it has any. A `label` the model
    lacks is refused too (Vocab.label_id), so that nothing is written before the error."""
    if label is not None:
        vocab.label_id(label)
    if skip_unknown:
        return "".join(c for c in prime if c in vocab)
    missing = vocab.missing(prime)
    if missing:
        raise UsageError(f"{name} has characters not in the model's vocabulary: {describe_chars(missing)}; {fix}")
    return prime


def resolve_seed(seed: int | None) -> int:
    """The seed to use: the one given, or a fresh random one (report it so a run can be repeated)."""
    return seed if seed is not None else int(torch.randint(0, 2**31 - 1, (1,)).item())


# Prime characters read per pass, a piece at a time with the state carried: serve reads a long prime between the
# other streams' steps (serve/engine.py), so a piece is what they may wait; every reader reads in the same pieces.
# Measured on 2 cores (the bundled model's 1 x 512): 64 characters a pass read 28.9k chars/s (2.2 ms a piece), 256
# 32.1k (8.0 ms), 512 35.5k (14.4 ms), 4096 30.1k (136 ms); 256 keeps a piece under 10 ms at 91% of the best rate.
PRIME_PIECE = 256
SCORES_PER_CHUNK = 1 << 24  # (rows x positions x vocabulary) one pass over the prime may make: 64 MB of float32

def start(model: CharRNN, vocab: Vocab, prime: str, n: int, device: torch.device, label: str | None = None,
          generator: torch.Generator | None = None, greedy: bool = False
          ) -> tuple[torch.Tensor, State, list[str] | None]:
    """n streams that have read EOS (a document's start) and the prime: the scores (n, vocab.text_size) of their first
    draw, their state, and each one's label (None for a model without labels). Call under inference_mode.

    A labelled model reads EOS, the label, then the prime. Without `label`, each stream's label is drawn
    (from `generator`; the likeliest with greedy) from P(label | prime), which is the corpus's share of each
    kind without a prime: so the samples are distributed as the model's documents that begin with the prime.
    Text positions never hold a label: the scores cover EOS and the characters only.
    """
    return finish(reading(model, vocab, prime, n, device, label, generator, greedy))


def reading(model: CharRNN, vocab: Vocab, prime: str, n: int, device: torch.device, label: str | None = None,
            generator: torch.Generator | None = None, greedy: bool = False
            ) -> Pieces[tuple[torch.Tensor, State, list[str] | None]]:
    """start(), a piece at a time (PRIME_PIECE characters of the prime per pass): it yields between pieces, so that
    serve's engine can step its other streams meanwhile, and returns what start() returns."""
    prime_ids = vocab.encode(prime).tolist()
    if label is not None or not vocab.labels:
        head = [] if label is None else [vocab.label_id(label)]
        ids = torch.tensor([EOS, *head, *prime_ids], dtype=torch.long, device=device).expand(n, -1)
        state = None
        for at in range(0, ids.shape[1], PRIME_PIECE):
            if at:
                yield
            logits, state = model(ids[:, at : at + PRIME_PIECE], state)
        return logits[:, -1, : vocab.text_size], state, None if label is None else [label] * n
    rows = len(vocab.labels)
    labels = torch.arange(vocab.text_size, len(vocab), device=device)[:, None]
    ids = torch.cat([torch.full((rows, 1), EOS, dtype=torch.long, device=device), labels,
                     torch.tensor(prime_ids, dtype=torch.long, device=device).expand(rows, -1)], 1)
    logits, state, nats = yield from _read(model, ids)
    chosen = _choose(-nats, n, generator, greedy)
    return logits.index_select(0, chosen)[:, : vocab.text_size], select_state(state, chosen), \
        [vocab.labels[i] for i in chosen.tolist()]


def text_step(model: CharRNN, vocab: Vocab, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """model.step for sampling: the scores (B, vocab.text_size) of the next draw, EOS and the characters only (a label
    never comes mid-text), and the new state. Every sampler steps through here."""
    logits, state = model.step(ids, state)
    return logits[:, : vocab.text_size], state


def _read(model: CharRNN, ids: torch.Tensor) -> Pieces[tuple[torch.Tensor, State, torch.Tensor]]:
    """Rows of ids (B, T) read from a fresh state, a piece at a time (the state carried, so memory stays bounded): the
    scores (B, V) after the last id, the state, and each row's nats (B,) for ids[:, 1:] given what came before."""
    chunk = max(1, min(PRIME_PIECE, SCORES_PER_CHUNK // (ids.shape[0] * model.config.vocab_size)))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    nats, state = torch.zeros(ids.shape[0], dtype=torch.float64, device=ids.device), None
    for at in range(0, inputs.shape[1], chunk):
        nll, state = model(inputs[:, at : at + chunk], state, targets[:, at : at + chunk])
        nats += nll.sum(1)
        yield
    logits, state = model(ids[:, -1:], state)
    return logits[:, -1], state, nats


def _choose(logp: torch.Tensor, n: int, generator: torch.Generator | None, greedy: bool) -> torch.Tensor:
    """n rows drawn by the unnormalised log-probabilities logp (R,) with one uniform number each (the argmax with
    greedy): (n,) indices."""
    if greedy:
        return logp.argmax().expand(n)
    cdf = torch.softmax(logp, 0).cumsum(0)
    u = torch.rand(n, generator=generator, device=logp.device, dtype=cdf.dtype)
    return torch.searchsorted(cdf, u * cdf[-1], right=True).clamp_max_(len(cdf) - 1)


def reported_probs(logits: torch.Tensor, cfg: SampleConfig) -> torch.Tensor:
    """The probabilities (B, V) reported beside drawn characters: the model's at the sampling temperature
    (1 with greedy), before top-k/top-p and before the no-empty-document mask."""
    return torch.softmax(logits.float() / (1.0 if cfg.greedy else cfg.temperature), -1)


class StopScan:
    """Watches one sample's new text for the stop strings, holding back what could be the start of one,
    so that nothing after a stop is ever emitted, even when the stop spans several drawn characters.

    feed() takes a drawn character (its probability, and under a constraint the state after it) and returns the
    characters that are now safe to emit, and whether a stop string ended the sample; flush() returns what is held
    back. Under a constraint (accepts: whether a state matches; start: the state before the first character), a stop
    ends the sample only where the text it leaves (with keep, the text through it) matches in full; elsewhere its
    characters are text like any other.
    """

    def __init__(self, stops: tuple[str, ...], keep: bool, accepts: Callable[[int], bool] | None = None,
                 start: int = 0):
        self.stops, self.keep, self.accepts = stops, keep, accepts
        self.held: list[tuple[str, float | None, int]] = []  # (character, p, constraint state after it)
        self.before = start  # the constraint's state before the first held character

    def feed(self, ch: str, p: float | None = None, state: int = 0) -> tuple[list[tuple[str, float | None]], bool]:
        self.held.append((ch, p, state))
        text = "".join(c for c, _, _ in self.held)
        for at, stop in sorted((at, s) for s in self.stops for at in _occurrences(text, s)):
            cut = at + (len(stop) if self.keep else 0)
            if self.accepts is None or self.accepts(self.held[cut - 1][2] if cut else self.before):
                return self._release(cut), True  # the earliest that may end it: every character is checked
        # Hold back the longest tail that a stop string could still begin with.
        tail = next((k for k in range(min(len(text), max(map(len, self.stops)) - 1), 0, -1)
                     if any(s.startswith(text[-k:]) for s in self.stops)), 0)
        return self._release(len(self.held) - tail), False

    def _release(self, cut: int) -> list[tuple[str, float | None]]:
        out, self.held = self.held[:cut], self.held[cut:]
        if out:
            self.before = out[-1][2]
        return [(c, p) for c, p, _ in out]

    def flush(self) -> list[tuple[str, float | None]]:
        return self._release(len(self.held))


def _occurrences(text: str, s: str) -> list[int]:
    """Where `s` begins in `text`, overlapping occurrences included."""
    found, at = [], text.find(s)
    while at >= 0:
        found.append(at)
        at = text.find(s, at + 1)
    return found


def release(scan: StopScan | None, ch: str | None, p=None, state: int = 0, only_end: bool = False
            ) -> tuple[list[tuple[str, object]], str | None]:
    """What one sample's drawn character (None: EOS) lets out, as (character, p) pairs, and why the sample
    ended there: "eos", "match" (EOS where a constraint allowed nothing else: `only_end`), "stop", or None while it
    goes on. At EOS, what the stop scan held back was no stop. `state`: the constraint's state after the character."""
    if ch is None:
        return (scan.flush() if scan else []), "match" if only_end else "eos"
    if scan is None:
        return [(ch, p)], None
    out, stopped = scan.feed(ch, p, state)
    return out, ("stop" if stopped else None)


class Sampler:
    """Draws cfg.num_samples samples as one batch; events() yields them as they are made.

    Every sample starts from EOS (start of a document), a labelled model's label (cfg.label, or one drawn: start),
    then `prime`; cfg.length new
    characters at most are drawn per sample. Without a prime EOS cannot be the first draw: a
    sample is a document, and no corpus has empty ones. A sample ends at EOS, at one of cfg.stop
    (cut before it, or after it with cfg.keep_stop), or at the length; `ended[i]` says which
    ("eos", "stop", "length"; "match" where a constraint allowed nothing but the end) once sample i is done.
    Under a constraint (cfg.regex, cfg.allow, cfg.ban: constraint.py) only what can still lead to a match is drawn,
    refused before anything is drawn where nothing can. With a fixed cfg.seed and device, the output is the same on
    every run.
    """

    def __init__(self, model: CharRNN, vocab: Vocab, prime: str, cfg: SampleConfig, device: torch.device | str = "cpu",
                 with_prob: bool = False):
        cfg.validate()
        check_prime(vocab, prime)
        self.model, self.vocab, self.prime, self.cfg, self.with_prob = model, vocab, prime, cfg, with_prob
        self.device = torch.device(device)
        self.ended: dict[int, str] = {}
        self.labels: list[str] | None = None  # each sample's label, once drawn (a labelled model's)
        self.constraint = constraint_for(cfg, vocab, prime, self.device)
        c = self.constraint
        self.scans = [StopScan(cfg.stop, cfg.keep_stop, c and c.accepts, c.start if c else 0)
                      for _ in range(cfg.num_samples)] if cfg.stop else None

    def events(self) -> Iterator[tuple]:
        """Yield (sample index, character) as they are drawn, (index, character, p) with_prob (p: the
        probability the model gave it at the sampling temperature, before top-k/top-p), and
        (index, None) when a sample ends before its length. Within a step, events come in sample order."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield from self._draw()
        finally:
            self.model.train(was_training)

    def _start(self, gen: torch.Generator) -> tuple[torch.Tensor, State]:
        logits, state, self.labels = start(self.model, self.vocab, self.prime, self.cfg.num_samples, self.device,
                                           self.cfg.label, gen, self.cfg.greedy)
        return logits, state

    def _draw(self) -> Iterator[tuple]:
        cfg, chars = self.cfg, self.vocab.chars
        gen = torch.Generator(device=self.device).manual_seed(resolve_seed(cfg.seed))
        # inference_mode wraps the arithmetic only: entered around each `yield`, it would cost more
        # than a 64-stream step's bookkeeping (it is a context switch per character).
        with torch.inference_mode():
            logits, state = self._start(gen)
        active = list(range(cfg.num_samples))
        states = None if self.constraint is None else torch.full((len(active),), self.constraint.start, device=self.device)
        for step in range(cfg.length):
            with torch.inference_mode():
                ids, mask = self._choose(step, logits, gen, states)
                drawn = ids.tolist()
                probs = self._probs(logits, ids) if self.with_prob else [None] * len(drawn)
                if states is not None:
                    states = self.constraint.advance(states, ids)
                after = states.tolist() if states is not None and self.scans else [0] * len(drawn)
                ends = self.constraint.only_end(mask).tolist() if mask is not None and EOS in drawn else [False] * len(drawn)
            keep = []
            for pos, (i, t) in enumerate(zip(active, drawn, strict=False)):
                if t != EOS and self.scans is None:  # the common case inline: this runs per character and stream
                    yield (i, chars[t - 1], probs[pos]) if self.with_prob else (i, chars[t - 1])
                    keep.append(pos)
                elif (yield from self._emit(i, None if t == EOS else chars[t - 1], probs[pos], after[pos], ends[pos])):
                    keep.append(pos)
            if not keep:
                return
            with torch.inference_mode():
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=self.device)
                    state, ids = select_state(state, index), ids.index_select(0, index)
                    states = None if states is None else states.index_select(0, index)
                    active = [active[p] for p in keep]
                logits, state = text_step(self.model, self.vocab, ids, state)
        for i in active:  # cut at the length: what a stop scan held back was no stop
            yield from self._out(i, self.scans[i].flush() if self.scans else [])
            self.ended[i] = "length"

    def _choose(self, step: int, logits: torch.Tensor, gen: torch.Generator, states: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each stream's draw (B,) from its scores, where no document may be empty and, under a constraint, only among
        what can still lead to a match in the length left; and then the constraint's mask (B, V), else None."""
        if step == 0 and not self.prime:  # a first draw of EOS would make an empty document
            logits = logits.index_fill(1, torch.tensor([EOS], device=self.device), -math.inf)
        if states is None:
            return next_ids(logits, self.cfg, gen), None
        mask = self.constraint.mask(states, self.cfg.length - step)
        return next_ids(logits + mask, self.cfg, gen), mask

    def _probs(self, logits: torch.Tensor, ids: torch.Tensor) -> list[float]:
        return reported_probs(logits, self.cfg).gather(1, ids[:, None])[:, 0].tolist()

    def _emit(self, i: int, ch: str | None, p: float | None, state: int = 0, only_end: bool = False) -> Iterator[tuple]:
        """Events for sample i's drawn character (None: EOS; `state`: the constraint's after it; `only_end`: nothing
        else was allowed); returns whether the sample goes on."""
        out, reason = release(self.scans[i] if self.scans else None, ch, p, state, only_end)
        yield from self._out(i, out)
        if reason:
            self.ended[i] = reason
            yield (i, None, p if ch is None else None) if self.with_prob else (i, None)
            return False
        return True

    def _out(self, i: int, chars: list[tuple[str, float | None]]) -> Iterator[tuple]:
        for c, p in chars:
            yield (i, c, p) if self.with_prob else (i, c)


def generate(model: CharRNN, vocab: Vocab, prime: str, cfg: SampleConfig, device: torch.device | str = "cpu",
             with_prob: bool = False) -> Iterator[tuple]:
    """Sampler(...).events(): (sample index, character) as they are drawn, (index, None) at an early end."""
    return Sampler(model, vocab, prime, cfg, device, with_prob).events()


def complete_samples(model: CharRNN, vocab: Vocab, prime: str, cfg: SampleConfig, device: torch.device | str = "cpu",
                     accept: Callable[[str], bool] | None = None, max_rounds: int = 20
                     ) -> Iterator[tuple[str, str, str | None]]:
    """Yield (text, why it ended: eos, stop or length, its label or None) for whole samples, text including the prime,
    keeping those `accept` takes.

    Samples are drawn in batches until cfg.num_samples are accepted or `max_rounds` batches
    are spent (then fewer come out). Round r uses seed cfg.seed + r, so the output is fixed by
    the seed; within a round, samples come in batch order.
    """
    wanted, seed = cfg.num_samples, resolve_seed(cfg.seed)
    for r in range(max_rounds):
        batch = wanted if r == 0 else min(4096, 2 * wanted)
        round_cfg = replace(cfg, num_samples=batch, seed=seed + r)
        texts: list[list[str]] = [[] for _ in range(batch)]
        sampler = Sampler(model, vocab, prime, round_cfg, device)
        for i, ch in sampler.events():
            if ch is not None:
                texts[i].append(ch)
        for i in range(batch):
            text = prime + "".join(texts[i])
            if accept is None or accept(text):
                yield text, sampler.ended[i], sampler.labels[i] if sampler.labels else None
                wanted -= 1
                if wanted == 0:
                    return


def read_prime(prime: str, prime_file: Path | None) -> str:
    """The prime: --prime's text, or standard input for '-', or --prime-file's contents (UTF-8, CRLF read as LF)."""
    if prime_file is not None and prime:
        raise UsageError("--prime and --prime-file both give a prime; give one of them")
    if prime == "-" or prime_file is not None:
        return read_text(prime_file if prime_file is not None else "-")
    return prime


def sample_filter(ckpt: dict, path: Path, novel: bool, unique: bool) -> Callable[[str], bool]:
    """The test a whole sample must pass: with `novel`, not a document of the checkpoint's training
    corpus (by its hash); with `unique`, not a repeat of one accepted before."""
    hashes = ckpt["corpus"].get("doc_hashes")
    if novel and hashes is None:
        raise UsageError(f"{path}: this checkpoint has no record of its training documents; retrain to use --novel")
    known = set(hashes.tolist()) if novel else None
    seen: set[str] = set()

    def accept(text: str) -> bool:
        if known is not None and doc_hash(text) in known:
            return False
        if unique:
            if text in seen:
                return False
            seen.add(text)
        return True

    return accept


def generate_text(model: CharRNN, vocab: Vocab, prime: str = "", length: int = 200, temperature: float = 1.0,
                  seed: int | None = 0, device: torch.device | str = "cpu") -> str:
    """One sample as a string (prime excluded), stopping at EOS."""
    cfg = SampleConfig(length=length, temperature=temperature, seed=seed)
    return "".join(c for _, c in generate(model, vocab, prime, cfg, device) if c is not None)
