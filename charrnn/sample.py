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

from .config import SampleConfig
from .data import EOS, Vocab, describe_chars, doc_hash, read_text
from .errors import UsageError
from .model import CharRNN, select_state


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


def next_ids(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator | None) -> torch.Tensor:
    """logits (B, V) -> drawn ids (B,): argmax with greedy, else a draw at the temperature after every RULES filter."""
    if cfg.greedy:
        return logits.argmax(dim=-1)
    rules = active_rules(cfg)
    logits = logits.float() / cfg.temperature
    for rule in rules:
        logits = rule.logits(logits, cfg)
    probs = torch.softmax(logits, dim=-1)
    for rule in rules:
        probs = rule.probs(probs, cfg)
    # Inverse CDF: one uniform number per stream, where torch.multinomial costs several times more
    # per call on small batches (and sampling makes a call per character).
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    drawn = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1).clamp_max_(probs.shape[-1] - 1)
    # Rounding can land on the flat end of the CDF past the last allowed character (p = 0):
    # never emit a character that top-k/top-p excluded.
    allowed = probs.gather(1, drawn[:, None]).squeeze(-1) > 0
    return torch.where(allowed, drawn, probs.argmax(dim=-1))


def check_prime(vocab: Vocab, prime: str) -> None:
    """Refuse a prime with characters the model never saw, naming them."""
    missing = vocab.missing(prime)
    if missing:
        raise UsageError(
            f"--prime has characters not in the model's vocabulary: {describe_chars(missing)}; "
            "remove them or pass --skip-unknown"
        )


def resolve_seed(seed: int | None) -> int:
    """The seed to use: the one given, or a fresh random one (report it so a run can be repeated)."""
    return seed if seed is not None else int(torch.randint(0, 2**31 - 1, (1,)).item())


def generate(model: CharRNN, vocab: Vocab, prime: str, cfg: SampleConfig, device: torch.device | str = "cpu",
             with_prob: bool = False) -> Iterator[tuple]:
    """Yield (sample index, character) as they are drawn; (index, None) when that sample draws EOS.

    with_prob: yield (index, character, p) instead, p being the probability the model gave the
    drawn character (at the sampling temperature, before top-k/top-p).

    Every sample starts from EOS (start of a document) followed by `prime`; cfg.length new
    characters at most are drawn per sample. Within a step, events come in sample order. With
    a fixed cfg.seed and device, the output is the same on every run.
    """
    cfg.validate()
    check_prime(vocab, prime)
    was_training = model.training
    model.eval()
    # inference_mode wraps the arithmetic only: entered around each `yield`, it would cost more
    # than a 64-stream step's bookkeeping (it is a context switch per character).
    try:
        device = torch.device(device)
        gen = torch.Generator(device=device).manual_seed(resolve_seed(cfg.seed))
        with torch.inference_mode():
            start = torch.tensor([EOS] + vocab.encode(prime).tolist(), dtype=torch.long, device=device)
            logits, state = model(start.expand(cfg.num_samples, -1), None)
            logits = logits[:, -1]
        active = list(range(cfg.num_samples))
        chars = vocab.chars
        for _ in range(cfg.length):
            with torch.inference_mode():
                ids = next_ids(logits, cfg, gen)
                drawn = ids.tolist()
                if with_prob:
                    temperature = 1.0 if cfg.greedy else cfg.temperature
                    probs = torch.softmax(logits.float() / temperature, -1).gather(1, ids[:, None])[:, 0].tolist()
            keep = []
            for pos, (i, t) in enumerate(zip(active, drawn, strict=False)):
                ch = None if t == EOS else chars[t - 1]
                yield (i, ch, probs[pos]) if with_prob else (i, ch)
                if ch is not None:
                    keep.append(pos)
            if not keep:
                return
            with torch.inference_mode():
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=device)
                    state = select_state(state, index)
                    ids = ids.index_select(0, index)
                    active = [active[p] for p in keep]
                logits, state = model.step(ids, state)
    finally:
        model.train(was_training)


def complete_samples(model: CharRNN, vocab: Vocab, prime: str, cfg: SampleConfig, device: torch.device | str = "cpu",
                     accept: Callable[[str], bool] | None = None, max_rounds: int = 20) -> Iterator[tuple[str, bool]]:
    """Yield (text, ended_by_eos) for whole samples, text including the prime, keeping those `accept` takes.

    Samples are drawn in batches until cfg.num_samples are accepted or `max_rounds` batches
    are spent (then fewer come out). Round r uses seed cfg.seed + r, so the output is fixed by
    the seed; within a round, samples come in batch order.
    """
    wanted, seed = cfg.num_samples, resolve_seed(cfg.seed)
    for r in range(max_rounds):
        batch = wanted if r == 0 else min(4096, 2 * wanted)
        round_cfg = replace(cfg, num_samples=batch, seed=seed + r)
        texts: list[list[str]] = [[] for _ in range(batch)]
        ended = [False] * batch
        for i, ch in generate(model, vocab, prime, round_cfg, device):
            if ch is None:
                ended[i] = True
            else:
                texts[i].append(ch)
        for i in range(batch):
            text = prime + "".join(texts[i])
            if accept is None or accept(text):
                yield text, ended[i]
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
