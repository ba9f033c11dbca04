"""Choosing the model a time budget can train well, on the device at hand.

A bigger network learns more per character but reads fewer characters per second. Under a fixed
budget the best size is the largest one that still gets to read enough text: about
CHARS_PER_PARAM characters per parameter (calibrated on tinyshakespeare at 2 and 10 minutes on
2 CPU cores; README, "How the defaults were chosen"). A small corpus caps the size too, since a
network much larger than its text only memorises it.

The speed of each candidate is measured, not guessed: a few real training steps on the device, so
the same budget buys a larger model on a GPU than on a laptop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cells import get_cell
from .config import ModelConfig

# Candidates, smallest first: (layers, hidden, dropout). Deeper rungs get more dropout because
# they are chosen for long budgets, which read the corpus many times over.
LADDER: tuple[tuple[int, int, float], ...] = (
    (1, 128, 0.1), (1, 192, 0.1), (1, 256, 0.1), (1, 384, 0.1), (1, 512, 0.1),
    (2, 512, 0.2), (2, 768, 0.25), (3, 1024, 0.3),
)
CHARS_PER_PARAM = 5.0  # characters the budget must let a model read per parameter
MAX_PARAMS_PER_CHAR = 4.0  # no more parameters than this many per training character
USABLE = 0.9  # share of the budget spent in training steps (evaluations and checkpoints take the rest)


@dataclass(frozen=True)
class Choice:
    layers: int
    hidden: int
    dropout: float
    params: int
    chars_per_s: float  # measured for the chosen size
    reason: str


def count_params(cfg: ModelConfig) -> int:
    """Parameters of a CharRNN with this config, without building it."""
    rnn = get_cell(cfg.cell).num_params(cfg.embed, cfg.hidden, cfg.layers)
    return cfg.vocab_size * cfg.embed + rnn + cfg.hidden * cfg.vocab_size + cfg.vocab_size


def measure_chars_per_s(cfg: ModelConfig, batch: int, seq_len: int, device: torch.device, warmup: int = 3,
                        steps: int = 3) -> float:
    """Training characters per second of a model of this shape: forward, backward and AdamW.

    The first steps of a new shape are slow (kernels are chosen, memory is allocated), so they are
    not timed; of the timed steps the fastest counts, as the steady state a long run settles into.
    """
    from .model import CharRNN
    from .runtime import synchronize

    model = CharRNN(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (batch, seq_len + 1), generator=gen).to(device)
    best = float("inf")
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        logits, _ = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(device)
        if i >= warmup:
            best = min(best, time.perf_counter() - t0)
    return batch * seq_len / best


def choose_model(base: ModelConfig, train_chars: int, budget_s: float, batch: int, seq_len: int, device: torch.device,
                 measure: Callable[[ModelConfig], float] | None = None) -> Choice:
    """The largest LADDER rung that the budget lets read CHARS_PER_PARAM chars per parameter and the corpus can feed.

    base supplies cell, embed and vocab_size. `measure` (cfg -> chars/s) defaults to timing real
    steps on `device`; rungs are tried smallest first and timing stops at the first that fails,
    so a short budget spends well under a second choosing.
    """
    measure = measure or (lambda c: measure_chars_per_s(c, batch, seq_len, device))
    chosen = None
    why = ""
    for layers, hidden, dropout in LADDER:
        cfg = ModelConfig(vocab_size=base.vocab_size, cell=base.cell, layers=layers, hidden=hidden, embed=base.embed,
                          dropout=dropout)
        params = count_params(cfg)
        if chosen is not None and params > MAX_PARAMS_PER_CHAR * train_chars:
            why = f"the corpus ({train_chars:,} training chars) is too small for {layers} x {hidden}"
            break
        rate = measure(cfg)
        readable = rate * budget_s * USABLE
        if chosen is not None and readable < CHARS_PER_PARAM * params:
            why = f"{layers} x {hidden} would read only {readable / params:.1f} chars per parameter in the budget"
            break
        chosen = Choice(layers, hidden, dropout, params, rate,
                        f"reads ~{readable / 1e6:.1f}M chars ({readable / params:.0f} per parameter) at {rate:,.0f} chars/s")
    assert chosen is not None
    return Choice(chosen.layers, chosen.hidden, chosen.dropout, chosen.params, chosen.chars_per_s,
                  f"{chosen.reason}; {why or 'the largest size offered'}")
