"""Dynamic evaluation (Krause et al., "Dynamic Evaluation of Neural Sequence Models", 2018): the model
keeps learning from the text it reads.

The text is read one segment at a time with the state carried; each segment is scored first and
only then used for a gradient step, so every character is predicted by weights that have seen only
the text before it. The steps change a copy of the weights: the checkpoint is never touched. An
update rule is one class (SGD, RMS); the rule's state starts afresh for every text.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from ..errors import UsageError
from ..model.heads import IGNORE
from ..model.network import CharRNN, detach_state
from ..model.runtime import to_device
from ..text.data import EOS, Vocab, label_head
from .config import DynamicConfig
from .metrics import Loss


class SGD:
    """theta <- theta - lr * g, then a pull of `decay` toward the trained weights theta0."""

    def __init__(self, params: list[torch.Tensor], cfg: DynamicConfig):
        self.params, self.cfg = params, cfg
        self.origin = [p.detach().clone() for p in params]

    def direction(self, i: int, g: torch.Tensor) -> torch.Tensor:
        return g

    @torch.no_grad()
    def step(self) -> None:
        for i, (p, p0) in enumerate(zip(self.params, self.origin, strict=True)):
            if p.grad is not None:
                p.sub_(self.direction(i, p.grad), alpha=self.cfg.lr)
            if self.cfg.decay:
                p.lerp_(p0, self.cfg.decay)
            p.grad = None


class RMS(SGD):
    """The gradient divided by a running root mean square of the gradients seen so far in this text
    (bias-corrected), so that every weight moves at a comparable rate, as in the paper's RMS rule;
    the mean square comes from text already scored, never from text ahead."""

    BETA, EPS = 0.99, 1e-8

    def __init__(self, params, cfg):
        super().__init__(params, cfg)
        self.ms = [torch.zeros_like(p) for p in params]
        self.t = 0

    def direction(self, i, g):
        if i == 0:
            self.t += 1
        self.ms[i].mul_(self.BETA).addcmul_(g, g, value=1 - self.BETA)
        return g / (self.ms[i].div(1 - self.BETA**self.t).sqrt_().add_(self.EPS))


RULES = {"sgd": SGD, "rms": RMS}


def check(cfg: DynamicConfig) -> None:
    """Refuse settings that cannot work, before anything is scored or printed."""
    if cfg.rule not in RULES:
        raise UsageError(f"--dynamic-rule {cfg.rule!r} is not known; use {', '.join(RULES)}")
    if cfg.segment < 1 or not (cfg.lr > 0 and math.isfinite(cfg.lr)) or not 0 <= cfg.decay < 1:
        raise UsageError("--dynamic-segment must be >= 1, --dynamic-lr > 0 and --dynamic-decay in [0, 1)")


class Adapter:
    """A copy of a model that adapts to the text it scores: feed() it ids, one stretch after another."""

    def __init__(self, model: CharRNN, cfg: DynamicConfig):
        check(cfg)
        device = model.device
        # Dropout and weight drop off, in train mode: cuDNN's RNN backward runs only in train mode.
        self.model = CharRNN(replace(model.config, dropout=0.0, weight_drop=0.0)).to(device)
        self.model.load_state_dict(model.state_dict())  # copies the values: the two models share nothing
        self.model.train()
        self.cfg, self.device = cfg, device
        self.rule = RULES[cfg.rule](list(self.model.parameters()), cfg)
        self.state = None

    def feed(self, ids: np.ndarray, scored_below: int | None = None) -> Loss:
        """Score ids[1:] given ids[0] and everything fed before (the carried state), adapting after each segment.
        Ids from scored_below up (labels) are read, not scored."""
        n, unscored = len(ids) - 1, 0
        total = torch.zeros((), dtype=torch.float64, device=self.device)  # read once at the end: no wait per segment
        for s in range(0, n, self.cfg.segment):
            e = min(n, s + self.cfg.segment)
            x = to_device(torch.from_numpy(np.asarray(ids[s:e], dtype=np.int64)), self.device)[None]
            y = np.asarray(ids[s + 1 : e + 1], dtype=np.int64)
            if scored_below is not None:
                given = y >= scored_below
                unscored += int(given.sum())
                y = np.where(given, IGNORE, y)  # a copy: y may be a view of the caller's ids
            y = to_device(torch.from_numpy(y), self.device)
            with torch.enable_grad():
                nlls, state = self.model(x, self.state, y[None])
                nll = nlls.sum()
                (nll / (e - s)).backward()
            total += nll.detach()
            self.rule.step()
            self.state = detach_state(state)
        return Loss(float(total), n - unscored)

    def document(self, ids: np.ndarray, scored_below: int | None = None) -> Loss:
        """Score one document (EOS, its ids, EOS) from a fresh state, adapting; the weights carry over."""
        self.state = None
        return self.feed(ids, scored_below)


def dynamic_evaluate(model: CharRNN, ids: np.ndarray, cfg: DynamicConfig, scored_below: int | None = None) -> Loss:
    """The loss of ids[1:] under dynamic evaluation (one pass, state carried, weights adapting); labels unscored."""
    return Adapter(model, cfg).feed(ids, scored_below)


def adapted_to_prime(model: CharRNN, vocab: Vocab, prime: str, cfg: DynamicConfig, label: str | None = None) -> CharRNN:
    """A copy of the model adapted to the prime (read as the start of a document, of `label`'s kind when given),
    in eval mode, for sampling."""
    if len(prime) < 2:
        raise UsageError("--adapt learns from the prime: give one with --prime or --prime-file (the longer, the more it adapts)")
    adapter = Adapter(model, cfg)
    adapter.feed(np.concatenate([[EOS], label_head(vocab, label), vocab.encode(prime)]), vocab.text_size)
    return adapter.model.eval()
