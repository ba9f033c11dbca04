"""Choosing the model a time budget can train well, on the device at hand.

A bigger network learns more per character but reads fewer characters per second. Under a fixed
budget the best size is the largest one that still gets to read enough text: about
CHARS_PER_PARAM characters per parameter (calibrated on tinyshakespeare at 2 and 10 minutes on
2 CPU cores; docs/results.md, "How the defaults were chosen"). A small corpus caps the size too, since a
network much larger than its text only memorises it.

How many times the budget lets the chosen model read the training text (its passes) decides
its regularisation: none where it sees most characters once, more dropout as it sees the same
text again and again, and weight drop on the recurrent matrices where it reads it most often
(REGULARISATION_BY_MEMORISATION: the passes weighed by the parameters per training character, since a model
that can hold more of its text overfits it in fewer passes; calibrated on names, tinyshakespeare, prose, code
and Chinese, and on names at a third of the speed).

The speed of each candidate is measured, not guessed: a few real training steps on the device, so
the same budget buys a larger model on a GPU than on a laptop. A GPU also chooses how many streams a
step trains (best_streams over GPU_STREAMS, the learning rate scaled to them) and climbs a longer
ladder (GPU_LADDER); a CPU keeps 32 streams and LADDER, its choices unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..model.cells import get_cell
from ..model.config import ModelConfig, Regularisation
from ..model.heads import cutoffs_for, head_class
from .batching import fits
from .config import STREAMS, TrainConfig

# Candidates, smallest first: (layers, hidden).
LADDER: tuple[tuple[int, int], ...] = ((1, 128), (1, 192), (1, 256), (1, 384), (1, 512), (2, 512), (2, 768), (3, 1024))
# A GPU's long budgets buy more: the same ladder, then rungs a CPU never reaches (not yet calibrated on a GPU).
GPU_LADDER: tuple[tuple[int, int], ...] = (*LADDER, (3, 1536), (4, 2048))
# Streams per step a GPU chooses among (a CPU keeps --batch-size's 32: small steps, many updates, won there).
# A GPU runs 32 x 64 at a few percent of its peak: more streams cost it little time per step, so the fewest
# that reach STREAMS_ENOUGH of the fastest rate are taken (more would only mean fewer updates per character).
GPU_STREAMS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
STREAMS_ENOUGH = 0.9
MAX_LR_SCALE = 4.0  # ... at most (1,024 streams would give 5.7; unmeasured so far)
# --softmax auto takes adaptive softmax when it trains at least this much faster than the full one: its
# tail clusters see rare characters through a narrower layer, which a small gain in speed would not repay.
ADAPTIVE_GAIN = 1.2


# (memorisation at least, regularisation): the last row a model's memorisation reaches. Memorisation is the
# passes over the training text times the model's parameters (outside the embedding) per training character:
# reading a text again and again overfits it, and the sooner the more of it the model can hold. Passes alone
# could not tell names read ~20 times by 1 x 384 (3.5 parameters per character: overfits with dropout 0.2,
# best validation at half the budget) from tinyshakespeare read ~26 times by 1 x 512 (1.2 per character:
# dropout 0.1 still best). Measured: dropout costs at 18 (tinyshakespeare at 10 minutes, 1 x 512, ~14.6
# passes: 0.2 1.4585, 0.1 1.4421); at ~85 (names at a third of the calibration machine's speed, 2 x 256)
# dropout 0.3 with weight drop 0.3 gave test 1.8857 where 1 x 384 had 1.8941 with them and 1.9123 with 0.2;
# at 200-320 (names at full speed, 2 x 256) weight drop 0.3 with dropout 0.3 beat dropout 0.4 alone on
# makemore's test names by 0.013 with two seeds (1.8688 and 1.8771 against 1.8821 and 1.8899); 0.2 + 0.4,
# 0.4 + 0.2 and 0.5 + 0.3 did less well (docs/results.md, "Round 2"). Prose at 3 minutes (0.05) trains best without.
REGULARISATION_BY_MEMORISATION: tuple[tuple[float, Regularisation], ...] = (
    (0, Regularisation(0.0)), (0.1, Regularisation(0.1)), (35, Regularisation(0.2)), (50, Regularisation(0.3)),
    (70, Regularisation(0.3, weight_drop=0.3)),
)
# A single layer takes dropout only at its input and output; past this memorisation it overfits whatever
# the dropout (names at 5 minutes: 1 x 384 at ~190 peaked at half the budget with dropout 0.4, 2 x 256 did
# better; at ~85, on a machine a third as fast, 1 x 384 with dropout and weight drop 0.3 lost to 2 x 256
# with them by 0.008), so a one-layer choice past it gives way to DEEP_SMALL when that fits, even reading
# only DEEP_MIN_CHARS_PER_PARAM characters per parameter (2 x 256 read 4.5 there and still won). Below it
# one layer wins (tinyshakespeare at 10 minutes in bf16, 1 x 512 at ~32: 1.4477, 2 x 256 with dropout
# 0.3: 1.4656; at 2 minutes, 4.5 passes: 2 x 256 1.5554 where 1 x 384 had 1.5413), hence not a rung of
# its own. 2 x 384 was tried too: on tinyshakespeare at 10 minutes it did worse than 1 x 512 (1.4486, 1.4421).
# (passes at least, AdamW's beta1): the last row the budget reaches. Momentum-free Adam (as Melis et al. 2018
# train char-level LSTMs) won by 0.045 nats on tinyshakespeare (~5 passes) and 0.063 on prose (0.5) at 2
# minutes, and lost by 0.005 (test 0.008) on names (~29 passes, dropout 0.2): benchmarks/OPTIMISER.md. On names
# at ~20 passes (2 x 256, a machine a third as fast) it won by 0.012 on the test names (1.8857 against 1.8979),
# so the row sits between the two, at 25. Without a budget the passes are unknown: 0.9, as before.
MOMENTUM_BY_PASSES: tuple[tuple[float, float], ...] = ((0, 0.0), (25, 0.9))
# (passes at least, --optimizer): the last row the budget reaches. Muon won where the text is read a few times,
# time-matched, though it trains fewer characters a second: tinyshakespeare at 2 minutes (~5 passes) by 0.014,
# at 10 minutes (~10) by 0.021 (1.4321 against 1.4528), prose at 2 minutes (0.5) by 0.074; it lost by 0.02 on
# names (~29 passes, dropout 0.2): benchmarks/OPTIMISER.md, docs/results.md, "The optimiser, measured". Without a budget:
# AdamW, as before.
OPTIMIZER_BY_PASSES: tuple[tuple[float, str], ...] = ((0, "muon"), (25, "adamw"))
DEEP_SMALL = (2, 256)
MAX_MEMORISATION_ONE_LAYER = 60.0
DEEP_MIN_CHARS_PER_PARAM = 2.5
CHARS_PER_PARAM = 5.0  # characters the budget must let a model read per parameter
# No more parameters than this many per training character. Checked past it on names at 5 minutes (2 x 256 chosen,
# makemore's test 1.882): 2 x 384 with dropout and weight drop 0.4 scored 1.929, its best already before the budget
# ended; 3 x 256 with 0.3 and 0.3 1.905.
MAX_PARAMS_PER_CHAR = 5.0
USABLE = 0.9  # share of the budget spent in training steps (evaluations and checkpoints take the rest)


@dataclass(frozen=True)
class Choice:
    layers: int
    hidden: int
    regularisation: Regularisation
    params: int
    chars_per_s: float  # measured for the chosen size
    passes: float  # how many times the budget lets it read the training text
    memorisation: float  # passes x parameters (outside the embedding) per training character (memorisation())
    reason: str
    streams: int = STREAMS  # per step: the batch it was measured with (chosen on a GPU)


def ladder_for(device: torch.device) -> tuple[tuple[int, int], ...]:
    return GPU_LADDER if device.type == "cuda" else LADDER


def streams_for(device: torch.device, train_chars: int, seq_len: int) -> tuple[int, ...] | None:
    """The streams per step to choose among on this device (None: keep the batch asked for): a GPU's
    GPU_STREAMS that the training text can fill, one window each an epoch."""
    if device.type != "cuda":
        return None
    return tuple(b for b in GPU_STREAMS if fits(train_chars, b, seq_len)) or None


def scaled_lr(lr: float, streams: int) -> float:
    """The learning rate for `streams` per step, from one tuned for config.STREAMS, the default the learning rates
    were swept with (square-root scaling, capped)."""
    return lr * min(MAX_LR_SCALE, (streams / STREAMS) ** 0.5) if streams > STREAMS else lr


def best_streams(cfg: ModelConfig, options: tuple[int, ...], measure: Callable[[ModelConfig, int], float]
                 ) -> tuple[int, float]:
    """(streams, chars/s): the fewest of `options` whose measured rate reaches STREAMS_ENOUGH of the fastest."""
    rates = {b: measure(cfg, b) for b in options}
    top = max(rates.values())
    chosen = min(b for b, rate in rates.items() if rate >= STREAMS_ENOUGH * top)
    return chosen, rates[chosen]


def readable_chars(chars_per_s: float, budget_s: float) -> float:
    """Characters a model training at chars_per_s reads in a budget of budget_s (USABLE of it trains)."""
    return chars_per_s * budget_s * USABLE


def memorisation(passes: float, learning_params: int, train_chars: int) -> float:
    """How hard a budget lets a model learn its text by heart: the passes over the training text times the
    parameters outside the embedding (count_params(..., embedding=False)) per training character."""
    return passes * learning_params / max(train_chars, 1)


def _row(rows: tuple[tuple[float, object], ...], value: float):
    """The setting of the last (at least, setting) row that `value` reaches; rows start at 0, increasing."""
    return [setting for at_least, setting in rows if value >= at_least][-1]


def regularisation_for(memorised: float) -> Regularisation:
    """For a model whose budget gives it this memorisation (REGULARISATION_BY_MEMORISATION)."""
    return _row(REGULARISATION_BY_MEMORISATION, memorised)


def momentum_for(passes: float | None) -> float:
    """AdamW's beta1 for a model that will read its training text `passes` times (MOMENTUM_BY_PASSES)."""
    return 0.9 if passes is None else _row(MOMENTUM_BY_PASSES, passes)


def optimizer_for(passes: float | None) -> str:
    """--optimizer for a model that will read its training text `passes` times (OPTIMIZER_BY_PASSES)."""
    return "adamw" if passes is None else _row(OPTIMIZER_BY_PASSES, passes)


def count_params(cfg: ModelConfig, embedding: bool = True) -> int:
    """Parameters of a CharRNN with this config, without building it (without the embedding table: the ones the
    CHARS_PER_PARAM rule counts; a character's row is a lookup, trained only where that character is read, and
    with 6,175 characters it would be most of a small model)."""
    rnn = get_cell(cfg.cell).num_params(cfg.embed, cfg.hidden, cfg.layers)
    head = head_class(cfg.softmax).num_params(cfg.hidden, cfg.vocab_size, cfg.cutoffs)
    return (cfg.vocab_size * cfg.embed if embedding else 0) + rnn + head


def measure_chars_per_s(cfg: ModelConfig, batch: int, seq_len: int, device: torch.device, warmup: int = 3,
                        steps: int = 3, counts: np.ndarray | None = None, train: TrainConfig | None = None) -> float:
    """Training characters per second of a model of this shape: forward, backward and the optimiser `train` names
    (--optimizer; AdamW without it).

    The first steps of a new shape are slow (kernels are chosen, memory is allocated), so they are
    not timed; of the timed steps the fastest counts, as the steady state a long run settles into.
    The text is drawn at random, by `counts` (V,) where given: an adaptive head's cost depends on how
    often targets are rare.
    """
    from ..model.network import CharRNN
    from ..model.runtime import synchronize
    from .optim import make_optimizer

    model = CharRNN(cfg, counts=counts).to(device).train()
    opt = make_optimizer(model, replace(train or TrainConfig(), lr=1e-4), device, model.cell.gates)
    gen = torch.Generator().manual_seed(0)
    if counts is None:
        x = torch.randint(0, cfg.vocab_size, (batch, seq_len + 1), generator=gen)
    else:
        weights = torch.from_numpy(np.asarray(counts, dtype=np.float64)) + 1.0
        x = torch.multinomial(weights, batch * (seq_len + 1), replacement=True, generator=gen).view(batch, -1)
    x = x.to(device)
    best = float("inf")
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = model(x[:, :-1], None, x[:, 1:])[0].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(device)
        if i >= warmup:
            best = min(best, time.perf_counter() - t0)
    return batch * seq_len / best


def choose_model(base: ModelConfig, train_chars: int, budget_s: float, batch: int, seq_len: int, device: torch.device,
                 measure: Callable[[ModelConfig, int], float] | None = None,
                 streams: tuple[int, ...] | None = None) -> Choice:
    """The largest rung of the device's ladder (ladder_for) that the budget lets read CHARS_PER_PARAM chars per
    parameter and the corpus can feed, with the regularisation its memorisation calls for (memorisation());
    DEEP_SMALL instead of a single layer whose memorisation would pass MAX_MEMORISATION_ONE_LAYER.

    base supplies cell, embed and vocab_size. `measure` (cfg, streams -> chars/s) defaults to timing real
    steps on `device`; rungs are tried smallest first and timing stops at the first too slow or
    too large, so a short budget spends well under a second choosing. Each rung trains `batch` streams a
    step, or with `streams` (a GPU's, streams_for) the fewest of them that nearly reach its fastest rate.
    """
    measure = measure or (lambda c, b: measure_chars_per_s(c, b, seq_len, device))

    def rate_of(cfg: ModelConfig) -> tuple[int, float]:
        return best_streams(cfg, streams or (batch,), measure)

    chosen, why = None, "the largest size offered"
    for layers, hidden in ladder_for(device):
        fit, why_not = _try_rung(base, layers, hidden, train_chars, budget_s, rate_of)
        if fit is None:  # never the first rung, so something is chosen
            why = why_not
            break
        chosen = fit
    assert chosen is not None
    if chosen.layers == 1 and chosen.memorisation > MAX_MEMORISATION_ONE_LAYER:
        deep, _ = _try_rung(base, *DEEP_SMALL, train_chars, budget_s, rate_of, enough=DEEP_MIN_CHARS_PER_PARAM)
        if deep is not None:
            why = (f"{chosen.layers} x {chosen.hidden} would read the text {chosen.passes:.0f} times with "
                   f"{chosen.memorisation / chosen.passes:.1f} parameters per character: too often for one layer")
            chosen = deep
    return replace(chosen, reason=f"{chosen.reason}; {why}; {chosen.regularisation.describe()} for {chosen.passes:.1f} "
                                  f"passes (memorisation {chosen.memorisation:.0f})")


def _try_rung(base: ModelConfig, layers: int, hidden: int, train_chars: int, budget_s: float,
              rate_of: Callable[[ModelConfig], tuple[int, float]], enough: float = CHARS_PER_PARAM
              ) -> tuple[Choice | None, str]:
    """This size as a Choice, or None and why not: too large for the corpus, or too slow for the budget to let it
    read `enough` characters per parameter. (The smallest rung is kept by the caller whatever it says.)"""
    cfg = ModelConfig(vocab_size=base.vocab_size, cell=base.cell, layers=layers, hidden=hidden, embed=base.embed,
                      softmax=base.softmax, cutoffs=base.cutoffs)
    params, learning = count_params(cfg), count_params(cfg, embedding=False)
    if learning > MAX_PARAMS_PER_CHAR * train_chars and (layers, hidden) != LADDER[0]:
        return None, f"the corpus ({train_chars:,} training chars) is too small for {layers} x {hidden}"
    streams, rate = rate_of(cfg)
    readable = readable_chars(rate, budget_s)
    passes = readable / max(train_chars, 1)
    memorised = memorisation(passes, learning, train_chars)
    choice = Choice(layers, hidden, regularisation_for(memorised), params, rate, passes, memorised,
                    f"reads ~{readable / 1e6:.1f}M chars ({readable / learning:.0f} per parameter outside the embedding, "
                    f"{passes:.1f} passes over the training text) at {rate:,.0f} chars/s", streams)
    if readable < enough * learning and (layers, hidden) != LADDER[0]:
        return None, f"{layers} x {hidden} would read only {readable / learning:.1f} chars per parameter in the budget"
    return choice, ""


def choose_softmax(model: ModelConfig, counts: np.ndarray, measure: Callable[[ModelConfig], float]) -> tuple[ModelConfig, str]:
    """The model with its softmax settled (auto decided) and, when adaptive, its cutoffs, and a note saying why.

    counts (V,): each id's count in the training text. auto takes adaptive where the vocabulary splits
    (heads.cutoffs_for) and `measure` (cfg -> training chars/s on this device, at the model's shape or
    the ladder's first rung) finds it ADAPTIVE_GAIN faster than the full softmax.
    """
    cutoffs = cutoffs_for(counts)
    if model.softmax == "full" or (model.softmax != "adaptive" and not cutoffs):
        return replace(model, softmax="full", cutoffs=()), ""
    if not cutoffs:  # adaptive asked for on a vocabulary too small to split: the shortlist takes all but the rarest
        cutoffs = (max(1, len(counts) - 1),)
    adaptive = replace(model, softmax="adaptive", cutoffs=cutoffs)
    if model.softmax == "adaptive":
        return adaptive, adaptive.describe_softmax()
    full_rate, adaptive_rate = measure(replace(model, softmax="full", cutoffs=())), measure(adaptive)
    gain = adaptive_rate / full_rate
    if gain < ADAPTIVE_GAIN:
        return replace(model, softmax="full", cutoffs=()), ""
    return adaptive, (f"{adaptive.describe_softmax()}: trains {gain:.1f}x as fast as the full softmax here "
                      "(--softmax full to refuse)")
