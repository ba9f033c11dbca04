"""Configuration: frozen dataclasses, saved inside every checkpoint as plain dicts, and the one
declaration of every setting the command line offers for them.

A field with `help` in its metadata (see `setting`) becomes a command-line option, named after
the field unless `flags` says otherwise (options.from_config). This module imports no torch, so
the CLI can show defaults in --help without loading it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from .cells import CELLS, get_cell
from .errors import UsageError
from .schedule import SCHEDULES


def setting(default, help: str, flags: tuple[str, ...] = (), parse=None, cli_type=None, choices=None,
            shared: str | None = None):
    """A config field that the command line offers. parse: turns the option's value (of cli_type, else
    the field's type) into the field's; choices: a registry whose names the help lists; shared: the
    name of a shared option definition (options.SHARED)."""
    return field(default=default, metadata={"help": help, "flags": flags, "parse": parse, "cli_type": cli_type,
                                            "choices": choices, "shared": shared})


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)?")


def parse_duration(text: str | None) -> float | None:
    """'90s', '10m', '2h', '1h30m' or plain seconds -> seconds (None stays None)."""
    if text is None:
        return None
    s = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m or m.end() == pos:
            break
        total += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1, None: 1}[m.group(2)]
        pos = m.end()
    if not s or pos != len(s) or total <= 0:
        raise UsageError(f"--time {text!r} is not a duration; write it like 90s, 10m, 2h or 1h30m")
    return total


def unescape(text: str) -> str:
    """--stop's text with \\n, \\t and \\\\ read as a newline, a tab and a backslash (shells pass them literally)."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}.get(m.group(1), m.group(0)), text)


def positive_or_none(n: int) -> int | None:
    return n if n > 0 else None


@dataclass(frozen=True)
class Regularisation:
    """What a model's training is held back by: ModelConfig's fields of the same names."""

    dropout: float
    weight_drop: float = 0.0

    def describe(self) -> str:
        """'dropout P', with the weight drop when there is one (as info, progress and sizing notes show it)."""
        return f"dropout {self.dropout}" + (f", weight drop {self.weight_drop}" if self.weight_drop else "")


@dataclass(frozen=True)
class DocumentConfig:
    """How `train` cuts its text into documents and labels them (data.split_text, labels.py)."""

    lines: bool = setting(False, "Every non-empty line is a document (names, titles, log lines).", flags=("--lines",))
    doc_sep: str | None = setting(None, "Documents are separated by lines holding only SEP ('%' for fortune files; '' "
                                  "for blank lines).")
    label_sep: str | None = setting(None, "With --lines or --doc-sep: the text before the first SEP of each document is "
                                    "its label (its kind: an author, a language, an account), the rest its text. "
                                    "Escapes: \\t, \\n.", parse=unescape)
    label_from_file: bool = setting(False, "Label each file's documents by the file's name without its extension "
                                    "(poems/keats.txt: keats).", flags=("--label-from-file",))

    @property
    def whole_documents(self) -> bool:
        """Whether validation holds out whole documents (TrainConfig.whole_documents): a corpus cut into documents."""
        return self.lines or self.doc_sep is not None


# ModelConfig.softmax: heads.HEADS' names (tests/test_heads.py checks), and auto, resolved when a run starts.
# A saved config without one (None) is the full softmax every checkpoint had before.
SOFTMAX = ("auto", "full", "adaptive")
OPTIMIZERS = ("adamw", "muon", "muon-gates")  # optim.OPTIMIZERS' names (tests/test_optim.py checks)


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape. The defaults won a sweep on tinyshakespeare with a 10-minute CPU budget (README)."""

    vocab_size: int
    cell: str = setting("lstm", "Recurrent cell.", choices=CELLS)
    layers: int = setting(1, "Stacked recurrent layers.")
    hidden: int = setting(512, "Hidden units per layer.")
    embed: int = setting(64, "Character embedding size.")
    dropout: float = setting(0.1, "Dropout on embeddings, between layers and before the output.")
    weight_drop: float = setting(0.0, "DropConnect on the recurrent (hidden-to-hidden) weights: a share of them "
                                 "dropped for each training window.")
    softmax: str | None = setting(None, "Output layer: full; adaptive (frequent characters in a full-width head, rare "
                                  "ones in narrower clusters: for large vocabularies such as Chinese); or auto: "
                                  "adaptive where it trains faster on this device, measured. (default: auto)",
                                  choices=SOFTMAX)
    # Adaptive softmax: the frequency ranks where tail clusters begin (heads.cutoffs_for), set with the vocabulary.
    cutoffs: tuple[int, ...] = ()

    def __post_init__(self):
        get_cell(self.cell)  # an unknown cell is an error here, not a wrong model later
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))  # a checkpoint may hold a list
        for name in ("dropout", "weight_drop"):
            p = getattr(self, name)
            if not (0 <= p < 1):
                raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1), got {p:g}")

    @property
    def regularisation(self) -> Regularisation:
        return Regularisation(self.dropout, self.weight_drop)

    def describe_softmax(self) -> str:
        """'full softmax', or the adaptive softmax's split, as info and train's notes show it."""
        if not self.cutoffs:
            return "full softmax"
        return f"adaptive softmax ({self.cutoffs[0]:,} characters in the head, {len(self.cutoffs)} tail cluster(s))"

    def to_dict(self) -> dict:
        return asdict(self)


# --max-vocab's default: where adaptive softmax trains a 1 x 256 LSTM about as fast as the full softmax did at the
# old limit of 20,000 (benchmarks/VOCAB.md); more distinct characters usually means binary or mixed-up input.
MAX_VOCAB = 50_000
STREAMS = 32  # TrainConfig.batch_size when not given (on a GPU under --time: measured, sizing.streams_for)
LR = 5e-3  # TrainConfig.lr when not given: swept on tinyshakespeare (README, "How the defaults were chosen")
FINETUNE_LR = 2e-3  # ... and for a run that starts from a trained model (--init): README, "Start from a trained model"


@dataclass(frozen=True)
class TrainConfig:
    """How to train: TBPTT shape, optimiser and schedule, budget, validation, seed and device.

    Small windows and batches (64 x 32) give many updates per second on a CPU, which beat
    larger ones at every budget we measured.
    """

    seq_len: int = setting(64, "Truncated-BPTT window: characters per stream per step.")
    batch_size: int | None = setting(None, "Parallel streams per step. (default: 32; on a GPU with --time, the fewest "
                                     "that train nearly as fast as any, measured, with the learning rate scaled)")
    batch_ramp: int | None = setting(None, "Start with this many streams and double them at equal shares of the "
                                     "budget up to --batch-size (16 with --batch-size 64: 16, 32, then 64 streams), "
                                     "the learning rate scaled by sqrt(streams / 32), all processes' streams under "
                                     "torchrun; needs --time or --steps. (default: off)")
    lr: float | None = setting(None, "Peak learning rate (AdamW). (default: 5e-3; 2e-3 for a run started with --init)")
    min_lr_frac: float = setting(0.05, "The learning rate decays to lr x this by the end of the budget.")
    warmup: int = setting(100, "Steps of linear learning-rate warm-up.")
    schedule: str = setting("cosine", "Learning-rate schedule.", choices=SCHEDULES)
    optimizer: str | None = setting(None, "adamw; muon: Muon's orthogonalised updates for the recurrent and input "
                                    "matrices (AdamW for the rest); muon-gates: the same, each gate's block on its own. "
                                    "(default: by the passes over the training text the budget buys: muon under 25, "
                                    "else adamw, and adamw without a budget)", choices=OPTIMIZERS)
    beta1: float | None = setting(None, "AdamW's momentum (beta1). (default: by the passes over the training text the "
                                  "budget buys: 0 under 25, else 0.9, and 0.9 without a budget)")
    beta2: float = setting(0.99, "AdamW's second-moment decay (beta2).")
    ns_steps: int = setting(5, "Muon's Newton-Schulz iterations.")
    weight_decay: float = setting(0.01, "AdamW weight decay on matrices.")
    clip: float = setting(1.0, "Clip the global gradient norm to this.")
    ema: float = setting(0.0, "Also keep an exponential moving average of the weights with this decay per step "
                         "(0.999, say; 0: off), evaluated beside them: best.pt takes whichever scores better.")
    epochs: float | None = setting(None, "Stop after this many passes over the data.")
    steps: int | None = setting(None, "Stop after this many steps.")
    time_budget: float | None = setting(None, "Stop after this much time (evaluations included): 90s, 10m, 2h.",
                                        flags=("--time",), parse=parse_duration, cli_type=str)
    patience: int = setting(4, "Stop after this many evaluations without improvement: without a budget, or early "
                            "in a --time budget, whose rest would only overfit (0: never).")
    val_frac: float = setting(0.1, "Fraction held out from the end of each document for validation.")
    max_vocab: int = setting(MAX_VOCAB, "Refuse corpora with more distinct characters than this.")
    # Hold out whole documents (line/document corpora), not each one's tail: follows --lines/--doc-sep.
    whole_documents: bool = False
    eval_every: int | None = setting(None, "Evaluate every N steps. (default: 12 times per budget, else 250)")
    eval_chars: int | None = setting(1_000_000, "Score at most this many validation characters per evaluation "
                                     "(0: all).", parse=positive_or_none)
    seed: int = setting(1337, "Random seed (weights, data order, dropout).")
    device: str = setting("auto", "", shared="device")
    precision: str | None = setting(None, "auto (fp16 autocast on CUDA, fp32 elsewhere), fp32, bf16 or fp16; one this "
                                    "machine cannot run is refused. (default: auto; on --resume, the run's own)")
    compile: bool = setting(False, "torch.compile the training forward pass around the recurrent kernel: embedding, "
                            "dropout and output layer (dynamo leaves nn.LSTM/GRU/RNN to their fused kernels); slow start.",
                            flags=("--compile",))

    def to_dict(self) -> dict:
        return asdict(self)


# What a TrainConfig saved before a field existed trained with, where the field's default has since changed.
OLD_TRAIN_DEFAULTS = {"beta1": 0.9, "optimizer": "adamw"}


@dataclass(frozen=True)
class SampleConfig:
    """How to sample; validate() raises UsageError for values that make no sense."""

    length: int = setting(500, "New characters per sample (the prime not counted).", flags=("--length", "-l"))
    temperature: float = setting(1.0, "Softmax temperature (> 0): lower is safer, higher wilder.",
                                 flags=("--temperature", "-t"))
    top_k: int | None = setting(None, "Draw only among the K likeliest characters.")
    top_p: float | None = setting(None, "Draw only among the likeliest characters whose mass reaches P.")
    greedy: bool = setting(False, "Always take the most likely character.", flags=("--greedy",))
    num_samples: int = setting(1, "Samples to generate, as one batch.", flags=("--num-samples", "-n"))
    stop: tuple[str, ...] = setting((), "End a sample as soon as its new text contains TEXT (repeatable); the output "
                                    "ends just before it (--keep-stop keeps it). Escapes: \\n, \\t.", flags=("--stop",),
                                    cli_type=list[str], parse=lambda texts: tuple(unescape(t) for t in texts))
    keep_stop: bool = setting(False, "With --stop: end the output with the stop text instead of just before it.",
                              flags=("--keep-stop",))
    seed: int | None = setting(None, "Random seed (reported on stderr when not given).")
    label: str | None = setting(None, "", shared="label")
    beam: int | None = setting(None, "Beam search with K beams: the likeliest continuation they find (never less likely "
                               "than greedy's), not a random one; with -n the n likeliest, distinct (n <= K). "
                               "--json adds each one's log-probability.", flags=("--beam",))

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong with its value) for each setting out of range: the CLI names the
        flag (validate), serve names the JSON field."""
        found = []
        if self.length < 1:
            found.append(("length", f"must be at least 1, got {self.length}"))
        if self.num_samples < 1:
            found.append(("num_samples", f"must be at least 1, got {self.num_samples}"))
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            found.append(("temperature", f"must be a number > 0, got {self.temperature}; for argmax ask for greedy"))
        if self.top_k is not None and self.top_k < 1:
            found.append(("top_k", f"must be at least 1, got {self.top_k}"))
        if self.top_p is not None and not (0 < self.top_p <= 1):
            found.append(("top_p", f"must be in (0, 1], got {self.top_p}"))
        if any(not s for s in self.stop):
            found.append(("stop", "must not be empty: give the text that ends a sample (a blank line is \\n\\n)"))
        if self.beam is not None:
            found += self._beam_problems()
        return found

    def _beam_problems(self) -> list[tuple[str, str]]:
        if self.beam < 1:
            return [("beam", f"must be at least 1, got {self.beam}")]
        if self.greedy or self.top_k is not None or self.top_p is not None or self.temperature != 1.0:
            return [("beam", "finds the likeliest continuations: temperature, top-k, top-p and greedy do not apply; "
                             "leave them out")]
        if self.num_samples > self.beam:
            return [("num_samples", f"must be at most the beam width ({self.beam}) with beam search: {self.beam} beams "
                                    f"keep {self.beam} continuations")]
        return []

    def validate(self) -> None:
        for name, problem in self.problems():
            flags = SampleConfig.__dataclass_fields__[name].metadata["flags"]
            raise UsageError(f"{flags[0] if flags else '--' + name.replace('_', '-')} {problem}")


@dataclass(frozen=True)
class ServeConfig:
    """Where `charrnn serve` listens and whom it serves; validate() raises UsageError for values that make no sense."""

    host: str = setting("127.0.0.1", "Address to listen on (0.0.0.0: every interface, open to the network).")
    port: int = setting(8000, "Port to listen on (0: any free one, printed).")
    max_batch: int = setting(256, "Samples generated together; requests beyond it wait their turn.")
    allow_origin: tuple[str, ...] = setting((), "Let web pages from ORIGIN call the API from a browser (CORS), such as "
                                            "http://localhost:3000; repeatable; '*' for any page.", flags=("--allow-origin",),
                                            cli_type=list[str], parse=tuple)

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port must be from 0 to 65535, got {self.port}")
        if self.max_batch < 1:
            raise UsageError(f"--max-batch must be at least 1, got {self.max_batch}")
        bad = [o for o in self.allow_origin if o != "*" and not re.fullmatch(r"https?://[^/\s]+", o)]
        if bad:
            raise UsageError(f"--allow-origin {bad[0]!r} is not an origin; give scheme and host, such as "
                             "http://localhost:3000 (no path), or '*'")


@dataclass(frozen=True)
class DynamicConfig:
    """Dynamic evaluation (dynamic.py): how the weights keep learning from the text being scored.
    The defaults were measured on tinyshakespeare's validation text (README, "Dynamic evaluation")."""

    rule: str = setting("rms", "Update rule: rms (gradients scaled by their running RMS) or sgd.",
                        flags=("--dynamic-rule",))
    lr: float = setting(5e-4, "Step size of each update.", flags=("--dynamic-lr",))
    segment: int = setting(32, "Characters scored between updates.", flags=("--dynamic-segment",))
    decay: float = setting(0.001, "Pull toward the trained weights at each update (0: none).", flags=("--dynamic-decay",))
