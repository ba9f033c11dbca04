"""Configuration: frozen dataclasses, saved inside every checkpoint as plain dicts.

This module imports no torch, so the CLI can show defaults in --help without loading it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import UsageError

CELLS = ("lstm", "gru", "rnn")


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape. The defaults won a sweep on tinyshakespeare with a 10-minute CPU budget (README)."""

    vocab_size: int
    cell: str = "lstm"
    layers: int = 1
    hidden: int = 512
    embed: int = 64
    dropout: float = 0.1

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: TBPTT shape, optimiser and schedule, budget, validation, seed and device.

    Small windows and batches (64 x 32) give many updates per second on a CPU, which beat
    larger ones at every budget we measured.
    """

    seq_len: int = 64
    batch_size: int = 32
    lr: float = 5e-3
    min_lr_frac: float = 0.05  # the decay ends at lr * min_lr_frac
    warmup: int = 100  # steps of linear warm-up
    weight_decay: float = 0.01
    clip: float = 1.0
    epochs: float | None = None
    steps: int | None = None
    time_budget: float | None = None  # seconds of training (evaluations included)
    patience: int = 4
    val_frac: float = 0.1
    max_vocab: int = 20_000  # refuse corpora with more distinct characters (see data.check_vocab_size)
    whole_documents: bool = False  # hold out whole documents (line/document corpora), not each one's tail
    eval_every: int | None = None  # steps; None: about 12 evaluations over a known budget, else every 250 steps
    eval_chars: int | None = 1_000_000  # score at most this many validation chars per evaluation (spread evenly)
    seed: int = 1337
    device: str = "auto"
    precision: str = "auto"  # runtime.autocast_dtype: fp16 autocast on CUDA, fp32 elsewhere
    compile: bool = False  # torch.compile the training forward pass

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SampleConfig:
    """How to sample; validate() raises UsageError for values that make no sense."""

    length: int = 500
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    num_samples: int = 1
    seed: int | None = None

    def validate(self) -> None:
        if self.length < 1:
            raise UsageError(f"--length must be at least 1, got {self.length}")
        if self.num_samples < 1:
            raise UsageError(f"--num-samples must be at least 1, got {self.num_samples}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise UsageError(f"--temperature must be a number > 0, got {self.temperature}; use --greedy for argmax")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, got {self.top_k}")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise UsageError(f"--top-p must be in (0, 1], got {self.top_p}")


