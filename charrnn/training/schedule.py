"""How long a run goes on and how fast it learns: the budget, when to evaluate, why to stop, the learning rate.

Everything here is a pure function of the step, the training clock (seconds) and the evaluation
history (`bad_evals`, `lr_scale`, kept in the run's Progress), so it is tested without training.
A learning-rate schedule is one class with `lr()` and `after_evaluation()`, registered in SCHEDULES.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

MAX_AUTO_EPOCHS = 50  # the cap when only --patience decides when to stop

# Why a run stopped (Progress.stopped); signals add "interrupted" and "terminated". EARLY: a --time
# run whose validation stopped improving, so the rest of the budget would only fit the training text.
BUDGET, TIME, CAP, PATIENCE, EARLY = "budget", "time", "cap", "patience", "early"


@dataclass(frozen=True)
class Budget:
    """What a run may spend: steps (from --steps or --epochs, the smaller), seconds (--time), or neither,
    when patience ends the run, within a cap of MAX_AUTO_EPOCHS epochs.

    Patience (evaluations in a row without a better validation loss; 0: never) also ends a --time
    run early: with 12 evaluations a budget, the default 4 is a third of it, and a model whose
    validation has been getting worse for that long is overfitting, which more time only deepens.
    A --steps/--epochs budget is run to the end, as asked.
    """

    steps: int | None = None
    seconds: float | None = None
    cap_steps: int | None = None
    patience: int = 4

    @classmethod
    def of(cls, steps: int | None, epochs: float | None, seconds: float | None, patience: int,
           steps_per_epoch: int) -> Budget:
        horizon = steps or None
        if epochs:
            e_steps = max(1, int(round(epochs * steps_per_epoch)))
            horizon = min(horizon or e_steps, e_steps)
        cap = None if (horizon or seconds) else MAX_AUTO_EPOCHS * steps_per_epoch
        return cls(horizon, seconds or None, cap, patience)

    def fraction(self, step: int, elapsed: float) -> float | None:
        """How far through the budget (the further of steps and time); None without a budget."""
        fs = []
        if self.steps:
            fs.append(step / self.steps)
        if self.seconds:
            fs.append(elapsed / self.seconds)
        return max(fs) if fs else None

    def stop_reason(self, step: int, elapsed: float, bad_evals: int) -> str:
        """Why the run must stop before taking another step ("" to go on)."""
        if self.steps and step >= self.steps:
            return BUDGET
        if self.seconds and elapsed >= self.seconds:
            return TIME
        if self.cap_steps and step >= self.cap_steps:
            return CAP
        if not self.patience or bad_evals < self.patience:
            return ""
        if self.fraction(step, elapsed) is None:
            return PATIENCE
        return EARLY if self.seconds else ""


@dataclass(frozen=True)
class BatchRamp:
    """--batch-ramp: the streams a step reads, doubling from `start` to `end` (a power of two times start) at equal
    shares of the budget: with 16 and 64, 16 for its first third, 32 for the second, 64 for the last. Larger batches
    late average away the gradient noise that small ones early trade for more updates a second."""

    start: int
    end: int

    def streams(self, fraction: float | None) -> int:
        doublings = (self.end // self.start).bit_length() - 1
        stage = min(doublings, int((fraction or 0.0) * (doublings + 1)))
        return self.start << stage

    def lr_factor(self, streams: int, tuned_for: int) -> float:
        """What the learning rate is multiplied by at `streams` streams: sqrt(streams / tuned_for), the square-root
        rule for adaptive optimisers (tuned_for: the streams --lr's default was tuned with)."""
        return math.sqrt(streams / tuned_for)


@dataclass(frozen=True)
class Cadence:
    """When to evaluate: every `steps` steps, or, with `seconds`, each time the clock passes a multiple of it."""

    steps: int
    seconds: float | None = None

    @classmethod
    def of(cls, eval_every: int | None, budget: Budget, steps_per_epoch: int) -> Cadence:
        """--eval-every N, else about 12 evaluations over a known budget, else every 250 steps (or epoch)."""
        if eval_every:
            return cls(eval_every)
        steps = max(1, budget.steps // 12) if budget.steps else min(250, max(1, steps_per_epoch))
        return cls(steps, budget.seconds / 12 if budget.seconds else None)

    def due(self, step: int, elapsed: float, since: float) -> bool:
        """Whether to evaluate after `step`, the clock reading `elapsed`, the last evaluation (or the start) at `since`."""
        if self.seconds is None:
            return step % self.steps == 0
        return elapsed >= (math.floor(since / self.seconds) + 1) * self.seconds


@dataclass(frozen=True)
class Watching:
    """The part of a --time budget spent on what a person watches: evaluations, their samples, checkpoints, loss.png,
    and the score of the best weights on the whole validation split at the end.

    It counts against the budget, so all of it is held to WATCH_SHARE. Evaluations during the run score one fixed
    sample of the validation split, the same characters each time, so best.pt is chosen on one consistent measure.
    plan() sizes both scores once, from the scoring speed the first evaluation measures: the end's score takes the
    whole split where the share allows (else as much of it, spread evenly, as fits), and the evaluations the cadence
    plans take what is left of EVAL_SHARE, at least MIN_EVAL_SHARE. The time the end's score will take is kept
    from the training (the trainer shortens its Budget by it), so the run ends within its budget. The extras (the
    sample text, loss.png: 0.2-0.5 s a drawing) are skipped while the share spent is over EXTRAS_UNTIL (extras_due).
    Without a --time budget there is nothing to share: every evaluation scores up to --eval-chars.
    """

    WATCH_SHARE: ClassVar[float] = 0.05
    EVAL_SHARE: ClassVar[float] = 0.02  # the evaluations during the run, at most
    MIN_EVAL_SHARE: ClassVar[float] = 0.005  # ... and at least: best.pt needs a measure
    # checkpoints, samples and loss.png during the run, about (prose at 3 minutes, 1 x 384: 2%)
    SAVE_SHARE: ClassVar[float] = 0.02
    EXTRAS_UNTIL: ClassVar[float] = 0.035  # share spent under which an evaluation also shows a sample and draws loss.png
    PROBE_CHARS: ClassVar[int] = 16_384  # validation characters the first evaluation times; also the smallest sample

    seconds: float | None  # the --time budget
    evaluations: float  # that the cadence plans over it

    @classmethod
    def of(cls, budget: Budget, cadence: Cadence) -> Watching:
        planned = budget.seconds / cadence.seconds if budget.seconds and cadence.seconds else 12.0
        return cls(budget.seconds, planned)

    def plan(self, chars_per_s: float, most: int, overhead: int = 0) -> tuple[int, int]:
        """(characters each evaluation scores, characters the end's score takes), given the speed measured in
        characters read a second, `overhead` characters each score reads without scoring them (burn-in:
        evaluation.read_overhead), and at most `most` (the split, --eval-chars) each."""
        if not self.seconds:
            return most, most
        scoring = (self.WATCH_SHARE - self.SAVE_SHARE) * self.seconds  # seconds for both kinds of score
        least = max(self.MIN_EVAL_SHARE * self.seconds,
                    self.evaluations * (min(self.PROBE_CHARS, most) + overhead) / chars_per_s)
        final = min(most, int(chars_per_s * (scoring - least)) - overhead)
        evaluating = min(self.EVAL_SHARE * self.seconds, scoring - (max(final, 0) + overhead) / chars_per_s)
        fit = int(chars_per_s * evaluating / self.evaluations) - overhead
        sample = max(min(self.PROBE_CHARS, most), min(most, fit))
        return sample, max(final, sample)

    def extras_due(self, spent: float, elapsed: float) -> bool:
        """Whether this evaluation may also show a sample and draw loss.png: `spent` of `elapsed` seconds watched."""
        return not self.seconds or spent <= self.EXTRAS_UNTIL * max(elapsed, 1e-9)


class Schedule(Protocol):
    """A learning-rate schedule: the rate for a step, and how an evaluation's verdict changes lr_scale."""

    def lr(self, step: int, fraction: float | None, lr_scale: float) -> float: ...
    def after_evaluation(self, improved: bool, fraction: float | None, lr_scale: float) -> float: ...


SCHEDULES: dict[str, type] = {}


def register(cls: type) -> type:
    SCHEDULES[cls.name] = cls
    return cls


def get_schedule(name: str, lr: float, warmup: int, min_lr_frac: float) -> Schedule:
    try:
        return SCHEDULES[name](lr, warmup, min_lr_frac)
    except KeyError:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {name!r}") from None


@register
@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up over `warmup` steps, then cosine decay to lr * min_lr_frac over the budget.

    Without a budget there is nothing to decay over: the rate halves at each evaluation that did
    not improve on the best validation loss (plateau halving), and patience ends the run.
    """

    name: ClassVar[str] = "cosine"
    peak: float
    warmup: int
    min_lr_frac: float

    def lr(self, step: int, fraction: float | None, lr_scale: float) -> float:
        warm = min(1.0, (step + 1) / max(1, self.warmup))
        if fraction is None:
            return self.peak * warm * lr_scale
        f = min(1.0, max(0.0, fraction))
        return self.peak * warm * (self.min_lr_frac + (1 - self.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * f)))

    def after_evaluation(self, improved: bool, fraction: float | None, lr_scale: float) -> float:
        return lr_scale * 0.5 if not improved and fraction is None else lr_scale
