"""How to train (TrainConfig), saved in every checkpoint, and the defaults that depend on the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..settings import parse_duration, positive_or_none, setting
from ..text.config import MAX_VOCAB
from .schedule import SCHEDULES

OPTIMIZERS = ("adamw", "muon", "muon-gates")  # optim.OPTIMIZERS' names (tests/test_optim.py checks)
STREAMS = 32  # TrainConfig.batch_size when not given (on a GPU under --time: measured, sizing.streams_for)
LR = 5e-3  # TrainConfig.lr when not given: swept on tinyshakespeare (docs/results.md, "How the defaults were chosen")
FINETUNE_LR = 2e-3  # ... and for a run that starts from a trained model (--init): docs/training.md, "Start from a trained model"


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
class RunOptions:
    """How one `train` call runs, beside what it trains with: where it writes and starts from, how it reads its files,
    what it shows. Not saved in the checkpoint: a resumed run may change any of them."""

    out: Path | None = setting(None, "Run directory. (default: checkpoints/<first file's name>)")
    resume: bool = setting(False, "Continue the run in --out from its last.pt.")
    force: bool = setting(False, "With --resume: continue even if flags contradict the checkpoint.")
    init: Path | None = setting(None, "Fine-tune: start from this trained model (a .pt file, a run directory, or 'base' "
                               "for the bundled one), its shape kept, new characters added; optimizer, schedule and seed "
                               "are new.", flags=("--init",))
    sample_length: int = setting(200, "Characters of the sample shown at each evaluation (0: none).")
    plot: bool = setting(True, "Write loss.png in the run directory at each evaluation (when matplotlib is installed).",
                         flags=("--plot/--no-plot",))
    tensorboard: bool = setting(False, "Also write the curves and samples as TensorBoard event files into the run "
                                "directory's tb/ (needs the tensorboard package; view with tensorboard --logdir "
                                "checkpoints/).", flags=("--tensorboard",))
    quiet: bool = setting(False, "Only the final summary on stderr.", flags=("--quiet", "-q"))
    encoding: str = setting("utf-8", "", shared="encoding")
    errors: str = setting("strict", "", shared="errors")
    threads: int | None = setting(None, "", shared="threads")
