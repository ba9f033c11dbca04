"""Setting up a run: the checks, the resumed run's own settings, the corpus, and the model's shape.

set_up() does everything that comes before the first training step and writes nothing; what
it returns (a Run) is all the Trainer needs. Under torchrun, rank 0 encodes the corpus and
chooses the size, and the other ranks take its results.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import CharrnnError, UsageError
from ..model import checkpoint as ckpt_io
from ..model.config import ModelConfig, Regularisation
from ..model.runtime import asked_dtype, autocast, autocast_dtype
from ..text.corpus import Corpus, TextFiles, corpus_from_docs, prepare_corpus
from ..text.data import Vocab
from ..text.labels import Labelled
from . import distributed as dist_
from .batching import fit_batch_shape
from .config import FINETUNE_LR, LR, OLD_TRAIN_DEFAULTS, STREAMS, TrainConfig
from .distributed import World
from .finetune import Base, grown_weights, load_base, refuse_shape_flags


@dataclass
class Run:
    """A run ready to train: where it writes, its settings, its data, and the checkpoint it resumes (or None)."""

    out: Path
    cfg: TrainConfig
    model_config: ModelConfig
    corpus: Corpus
    record: dict  # the checkpoint's vocab, configs and corpus description (see corpus_record)
    device: torch.device
    prev: dict | None
    sizing_seconds: float  # choosing the size is part of the budget
    init_weights: dict | None = None  # a fine-tuned run's starting weights (--init), vocabulary grown
    counts: np.ndarray | None = None  # each id's count in the training text: a new adaptive head's ranks


def set_up(docs: list[str] | Labelled | TextFiles, model_cfg: dict, cfg: TrainConfig, out: Path, sources: list[str] | None,
           resume: bool, force: bool, doc_mode: dict | None, world: World, rep, init: str | None = None) -> Run:
    """Check the options, restore a resumed run's settings (or load the base of --init), prepare the corpus
    and choose the model."""
    device = world.device(cfg.device)
    prev = load_for_resume(out) if resume else None
    base = start_from(init, prev, model_cfg, out)
    asked = {"batch_size": cfg.batch_size is not None, "lr": cfg.lr is not None}  # the rest may follow the device
    if cfg.lr is None:
        cfg = replace(cfg, lr=LR if base is None else FINETUNE_LR)
    check_options(cfg, model_cfg, device)
    vocab = model_config = None
    if prev is not None:
        vocab, model_config = Vocab.from_record(prev), ModelConfig(**prev["model_config"])
        cfg = resumed_config(prev, cfg, rep)
    else:  # recorded as asked, so a resume keeps it
        cfg = replace(cfg, precision=cfg.precision or "auto", batch_size=cfg.batch_size or STREAMS)
        if base is not None:
            vocab = base.vocab
    # Before the corpus cache (the run directory's first file): a precision this machine lacks is refused here.
    kept = prev is not None and cfg.precision == prev["train_config"].get("precision")
    autocast_dtype(cfg.precision, device, cell_of(model_config, base, model_cfg),
                   asked=f"--resume of a run trained in {cfg.precision}" if kept else None)
    split = prepare_data(docs, vocab, cfg, out, world, rep, grow=base is not None)
    if base is not None:
        rep.message(f"--init: starting from {base.path} ({base.model_config.layers} x {base.model_config.hidden}); "
                    + growth_note(base.vocab, split.vocab))
    if prev is not None:
        refuse_contradictions(prev, split.fingerprint, model_cfg, force)
    if world.parallel and len(split.train) - 1 - cfg.seq_len < cfg.batch_size * world.size * cfg.seq_len:
        raise UsageError(f"the training text ({len(split.train):,} ids) is too short for {world.size} processes x "
                         f"--batch-size {cfg.batch_size} x --seq-len {cfg.seq_len}; use fewer processes or smaller batches")
    cfg, note = fit_batch_shape(len(split.train), cfg)
    if note:
        rep.message(note)
    t0 = time.perf_counter()
    counts = functools.cache(lambda: id_counts(split))
    if model_config is None:  # measured speeds differ between processes: rank 0 chooses for all
        if world.main:
            model_config, cfg = new_model_config(model_cfg, len(split.vocab), len(split.train), cfg, device, rep,
                                                 world.size, base=base, asked=asked, counts=counts)
        model_config, cfg = dist_.from_main(world, (model_config, cfg))
    if prev is None:
        cfg = fitted_ramp(cfg, rep)  # the streams the ramp ends with are known now (measured on a GPU)
    if isinstance(docs, TextFiles):
        sources = sources or [str(p) for p in docs.paths]
    sources = sources or [f"<document {i}>" for i in range(len(docs))]
    record = corpus_record(split, model_config, cfg, sources, doc_mode)
    lineage = base.lineage if base is not None else (prev or {}).get("base")
    if lineage:
        record["base"] = lineage
    return Run(out, cfg, model_config, split, record, device, prev, time.perf_counter() - t0 if prev is None else 0.0,
               init_weights=None if base is None else grown_weights(base, split.vocab),
               counts=counts() if prev is None and base is None and model_config.cutoffs else None)


def start_from(init: str | None, prev: dict | None, given: dict, out: Path) -> Base | None:
    """The base a new run starts from (--init), checked against the flags given; None for a run from scratch,
    and for --resume of a run that --init started (it continues the fine-tuning, not the base)."""
    if init is None:
        return None
    base = load_base(init)
    if prev is not None:
        started = (prev.get("base") or {}).get("sha256")
        if started != base.lineage["sha256"]:
            began = f"it started from {prev['base']['checkpoint']}" if started else "it was trained from scratch"
            raise UsageError(f"--init with --resume: the run in {out} did not start from {base.path} ({began}); "
                             "drop --init to continue it, or give a new --out to fine-tune")
        return None
    refuse_shape_flags(given, base)
    return base


def check_options(cfg: TrainConfig, model_cfg: dict, device: torch.device) -> None:
    """Refuse settings that cannot work, before any work."""
    ModelConfig(vocab_size=1, **model_cfg)  # its own checks, before the vocabulary is known
    asked_dtype(cfg.precision, device)  # the name; whether this machine runs it is asked once the cell is known
    if cfg.seq_len < 1 or (cfg.batch_size is not None and cfg.batch_size < 1):
        raise UsageError("--seq-len and --batch-size must be at least 1")
    if cfg.lr <= 0 or not math.isfinite(cfg.lr):
        raise UsageError(f"--lr must be a positive number, got {cfg.lr}")
    if not (0 <= (cfg.beta1 or 0) < 1 and 0 <= cfg.beta2 < 1):
        beta1 = "by budget" if cfg.beta1 is None else f"{cfg.beta1:g}"
        raise UsageError(f"--beta1 and --beta2 must be in [0, 1), got {beta1} and {cfg.beta2:g}")
    if cfg.ns_steps < 1:
        raise UsageError(f"--ns-steps must be at least 1, got {cfg.ns_steps}")
    if cfg.patience < 0:
        raise UsageError(f"--patience must be 0 (never stop for lack of improvement) or more, got {cfg.patience}")
    if cfg.batch_ramp is not None and (cfg.epochs or not (cfg.steps or cfg.time_budget) or cfg.batch_ramp < 1):
        raise UsageError("--batch-ramp doubles the streams at equal shares of a --time or --steps budget: give one "
                         "(not --epochs, whose passes are a moving number of steps while the streams change), and a "
                         "start of at least 1 stream")
    if cfg.batch_ramp is not None and cfg.batch_size is not None:
        check_ramp(cfg.batch_ramp, cfg.batch_size)  # before any work; fitted_ramp checks the streams finally read
    if cfg.val_frac == 0 and not (cfg.steps or cfg.epochs or cfg.time_budget):
        raise UsageError("with --val-frac 0 there is nothing to judge progress by; give --steps, --epochs or --time")


def fitted_ramp(cfg: TrainConfig, rep) -> TrainConfig:
    """--batch-ramp against the streams it ends with (--batch-size, or what a short corpus or the GPU left): off,
    said, when it would not double; refused unless the end is the start doubled a whole number of times."""
    start, end = cfg.batch_ramp, cfg.batch_size
    if start is None:
        return cfg
    if start >= end:
        rep.message(f"--batch-ramp {start}: off, since the run reads {end} streams (--batch-size) from the start")
        return replace(cfg, batch_ramp=None)
    check_ramp(start, end)
    return cfg


def check_ramp(start: int, end: int) -> None:
    """Refuse a ramp that cannot double its way from `start` streams to `end`."""
    if start < end and (end % start or (end // start) & (end // start - 1)):
        raise UsageError(f"--batch-ramp {start} doubles its way to --batch-size {end}: give a start that {end} is a "
                         f"power-of-two multiple of (such as {end >> max(1, (end // start).bit_length() - 1)})")


def load_for_resume(out: Path) -> dict:
    last = out / "last.pt"
    if not last.exists():
        raise UsageError(f"--resume: {last} does not exist; train without --resume first, or point --out at the run")
    return ckpt_io.load_checkpoint(last)


def cell_of(model_config: ModelConfig | None, base: Base | None, given: dict) -> str:
    """The cell the run trains: a resumed run's, the base's (--init), or the one asked for."""
    if model_config is not None:
        return model_config.cell
    if base is not None:
        return base.model_config.cell
    return given.get("cell", ModelConfig.__dataclass_fields__["cell"].default)


def resumed_config(prev: dict, cfg: TrainConfig, rep=None) -> TrainConfig:
    """The run's own settings stand; only how long to go on, how often to evaluate, where, and (when
    given) in what precision may change. Without a new budget, the run's own budget (say --time 10m)
    is finished; without --precision, the run's own precision (say fp32 on a GPU, where auto means fp16)."""
    own = TrainConfig(**{**OLD_TRAIN_DEFAULTS, **prev["train_config"]})
    changes = {"device": cfg.device, "patience": cfg.patience, "compile": cfg.compile}
    if cfg.precision is not None:
        changes["precision"] = cfg.precision
    if rep is not None and (own.precision != "auto" or cfg.precision not in (None, own.precision)):
        rep.message(precision_note(own.precision, cfg.precision))
    if cfg.epochs or cfg.steps or cfg.time_budget:
        changes.update(epochs=cfg.epochs, steps=cfg.steps, time_budget=cfg.time_budget)
    if cfg.eval_every:
        changes["eval_every"] = cfg.eval_every
    return replace(own, **changes)


def precision_note(own: str, asked: str | None) -> str:
    """What a resumed run says about its precision: kept, or changed as asked."""
    if asked in (None, own):
        return f"--resume: training on in {own}, the run's own precision (give --precision to change it)"
    return f"--resume: training on in {asked} as asked (the run trained in {own})"


def refuse_contradictions(prev: dict, fp: str, model_cfg: dict, force: bool) -> None:
    """Refuse to resume on another corpus or with other model flags (unless forced), naming each difference."""
    diffs = []
    if prev["corpus"]["fingerprint"] != fp:
        diffs.append("the corpus differs from the one it was trained on")
    for k, v in model_cfg.items():
        if prev["model_config"].get(k) != v and not (k == "softmax" and v == "auto"):  # auto: as the run chose
            diffs.append(f"{k} {prev['model_config'].get(k)} in the checkpoint, {v} asked for")
    if diffs and not force:
        raise UsageError(f"--resume refused: {'; '.join(diffs)}. Drop the conflicting flags, or add --force")


def growth_note(old: Vocab, new: Vocab) -> str:
    """What --init added to the base's vocabulary, as its start message says it."""
    chars, labels = new.chars[len(old.chars):], new.labels[len(old.labels):]
    said = [f"{len(chars)} new character(s) added: {''.join(chars)!r}"] if chars else []
    said += [f"{len(labels)} new label(s) added: {', '.join(labels)}"] if labels else []
    return "; ".join(said) or "no new characters"


def prepare_data(docs: list[str] | Labelled | TextFiles, vocab: Vocab | None, cfg: TrainConfig, out: Path, world: World,
                 rep, grow: bool = False) -> Corpus:
    """The corpus in memory (documents) or streamed into a token cache in out/corpus (files); vocab and
    grow as corpus.fit_vocab."""
    if not isinstance(docs, TextFiles):
        return corpus_from_docs(docs, vocab, cfg.val_frac, cfg.whole_documents, cfg.seed, cfg.max_vocab, grow=grow)

    def prepare():
        return prepare_corpus(list(docs.paths), out / "corpus", cfg.val_frac, docs.encoding, docs.errors, vocab=vocab,
                              max_vocab=cfg.max_vocab, progress=rep.reading, grow=grow,
                              labels=None if docs.labels is None else list(docs.labels))

    if world.parallel:  # rank 0 encodes; the others then find the cache (and the same errors)
        error = None
        if world.main:
            try:
                prepare()
            except UsageError as e:
                error = str(e)
        error = dist_.from_main(world, error)
        if error:
            raise UsageError(error)
    return prepare()


def new_model_config(given: dict, vocab_size: int, train_chars: int, cfg: TrainConfig, device: torch.device,
                     rep, processes: int = 1, base: Base | None = None, asked: dict | None = None,
                     counts: Callable[[], np.ndarray] | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The model for a new run, and its training settings: the fields in `given`, the rest from ModelConfig's
    defaults, or with `base` (--init) the base's shape with the grown vocabulary.

    Under a time budget with neither layers nor hidden given (and no base), the size (and its
    regularisation, unless given) is the one sizing.choose_model finds the budget can train well on
    this device; on a GPU, with the streams per step it measured best unless `asked` says --batch-size was
    given (and the learning rate scaled to them unless --lr was: sizing.scaled_lr). With any other budget and
    neither --dropout nor --weight-drop, both follow the passes over the training text that the budget buys,
    weighed by the model's parameters per training character (sizing.memorisation, sizing.regularisation_for);
    without a budget they are ModelConfig's defaults. Either one given sets the other to its default: they are
    chosen together. The optimiser and AdamW's beta1, unless given, follow the passes too (sizing.optimizer_for,
    sizing.momentum_for). The output layer (--softmax) is settled first
    (settled_softmax; `counts` gives each id's count in the training text), so sizing counts its real cost.
    """
    from . import sizing

    if base is not None:  # its shape and output layer (refuse_shape_flags refused other ones)
        kept = {k: v for k, v in base.model_config.to_dict().items() if k not in ("vocab_size", "dropout", "weight_drop")}
        given = {**{k: v for k, v in given.items() if k != "softmax"}, **kept}
        cfg = replace(cfg, optimizer=cfg.optimizer or "adamw")  # Muon is unmeasured on fine-tuning: AdamW, as before
    model = ModelConfig(vocab_size=vocab_size, **given)
    chosen_by_hand = "dropout" in given or "weight_drop" in given
    sized = cfg.time_budget and "layers" not in given and "hidden" not in given
    if base is None:
        model = settled_softmax(model, counts, cfg, device, rep, sized)
    if sized:
        return _sized_model(model, train_chars, cfg, device, rep, asked or {}, counts, chosen_by_hand)
    wanted = not chosen_by_hand or cfg.beta1 is None or cfg.optimizer is None
    passes = budget_passes(model, train_chars, cfg, device, processes) if wanted else None
    cfg = _by_passes(cfg, passes, rep)
    if passes is None or chosen_by_hand:
        return model, cfg
    learning = sizing.count_params(model, embedding=False)
    reg = sizing.regularisation_for(sizing.memorisation(passes, learning, train_chars))
    rep.message(f"{reg.describe()}: the budget reads the training text ~{passes:.1f} times with "
                f"{learning / max(train_chars, 1):.2g} parameters per character (give --dropout or --weight-drop to choose)")
    return _regularised(model, reg), cfg


def _sized_model(model: ModelConfig, train_chars: int, cfg: TrainConfig, device: torch.device, rep, asked: dict,
                 counts: Callable[[], np.ndarray] | None, chosen_by_hand: bool) -> tuple[ModelConfig, TrainConfig]:
    """new_model_config under --time with no size given: the size sizing.choose_model picks, timed with the optimiser
    the run will use (chosen by the passes AdamW's timing finds, unless given: Muon trains fewer characters a second,
    so the size is chosen again with its steps), then the regularisation and AdamW's beta1 its passes call for."""
    from . import sizing

    streams = None if asked.get("batch_size", True) else sizing.streams_for(device, train_chars, cfg.seq_len)

    def pick(settings: TrainConfig) -> sizing.Choice:
        with autocast(device, autocast_dtype(settings.precision, device, model.cell)):
            # One process's speed: under torchrun the size (and its regularisation) is chosen as for one.
            return sizing.choose_model(model, train_chars, settings.time_budget, settings.batch_size, settings.seq_len,
                                       device, streams=streams,
                                       measure=_timer(settings, device, counts if model.cutoffs else None))

    choice = pick(cfg)
    optimizer = cfg.optimizer or sizing.optimizer_for(choice.passes)  # decided once, on AdamW's timing
    if optimizer != (cfg.optimizer or "adamw"):
        choice = pick(replace(cfg, optimizer=optimizer))
    cfg = _with_streams(cfg, choice.streams, asked.get("lr", True))
    rep.message(f"--time {cfg.time_budget:g}s: chose {choice.layers} x {choice.hidden} ({choice.params:,} parameters)"
                + (f" with {cfg.batch_size} streams a step, lr {cfg.lr:.3g}" if streams else "")
                + f": {choice.reason}. Give --layers/--hidden/--dropout/--weight-drop to choose yourself")
    cfg = _by_passes(cfg, choice.passes, rep, optimizer)
    sized = replace(model, layers=choice.layers, hidden=choice.hidden)
    return (sized if chosen_by_hand else _regularised(sized, choice.regularisation)), cfg


def settled_softmax(model: ModelConfig, counts: Callable[[], np.ndarray] | None, cfg: TrainConfig,
                    device: torch.device, rep, sized: bool) -> ModelConfig:
    """`model` with its softmax decided (sizing.choose_softmax), measured at its own shape, or at the ladder's
    first rung when the budget will choose the shape; the counts are read only where a choice remains."""
    from ..model.heads import MIN_CLUSTER, MIN_SHORTLIST
    from . import sizing

    if model.softmax == "full" or (model.softmax != "adaptive" and model.vocab_size < MIN_SHORTLIST + MIN_CLUSTER):
        return replace(model, softmax="full")
    found = counts() if counts is not None else np.ones(model.vocab_size, dtype=np.int64)
    layers, hidden = sizing.LADDER[0] if sized else (model.layers, model.hidden)
    timer = _timer(cfg, device, lambda: found)

    def measure(candidate: ModelConfig) -> float:
        return timer(replace(candidate, layers=layers, hidden=hidden), cfg.batch_size)

    with autocast(device, autocast_dtype(cfg.precision, device, model.cell)):
        model, note = sizing.choose_softmax(model, found, measure)
    if note:
        rep.message(note)
    return model


def id_counts(split: Corpus, chunk: int = 1 << 24) -> np.ndarray:
    """How often each id occurs in the training text, (V,) int64, read in chunks (it may be a memmap of GBs)."""
    total = np.zeros(len(split.vocab), dtype=np.int64)
    for at in range(0, len(split.train), chunk):
        total += np.bincount(split.train[at : at + chunk], minlength=len(split.vocab))
    return total


def _by_passes(cfg: TrainConfig, passes: float | None, rep, optimizer: str | None = None) -> TrainConfig:
    """cfg with the optimiser (`optimizer` where the caller decided it already) and AdamW's beta1 set by the passes
    over the training text (sizing.optimizer_for, sizing.momentum_for), each unless given; says what a budget chose."""
    from . import sizing

    settled = replace(cfg, optimizer=cfg.optimizer or optimizer or sizing.optimizer_for(passes),
                      beta1=sizing.momentum_for(passes) if cfg.beta1 is None else cfg.beta1)
    chosen = [f"--optimizer {settled.optimizer}"] * (cfg.optimizer is None) + [f"--beta1 {settled.beta1:g}"] * (cfg.beta1 is None)
    if passes is not None and chosen:
        rep.message(f"{' and '.join(chosen)}: the budget reads the training text ~{passes:.1f} times "
                    f"(give {' or '.join(c.split()[0] for c in chosen)} to choose)")
    return settled


def _with_streams(cfg: TrainConfig, streams: int, lr_given: bool) -> TrainConfig:
    """cfg training `streams` per step, its learning rate scaled to them unless --lr was given."""
    from . import sizing

    if streams == cfg.batch_size:
        return cfg
    return replace(cfg, batch_size=streams, lr=cfg.lr if lr_given else sizing.scaled_lr(cfg.lr, streams))


def _timer(cfg: TrainConfig, device: torch.device, counts: Callable[[], np.ndarray] | None
           ) -> Callable[[ModelConfig, int], float]:
    """(model, streams) -> training chars/s measured on `device` with this run's optimiser, the text drawn by the
    training text's counts where given (an adaptive head's cost depends on them)."""
    from . import sizing

    found = counts() if counts is not None else None
    return lambda model, streams: sizing.measure_chars_per_s(model, streams, cfg.seq_len, device, counts=found, train=cfg)


def _regularised(model: ModelConfig, reg: Regularisation) -> ModelConfig:
    return replace(model, dropout=reg.dropout, weight_drop=reg.weight_drop)


def budget_passes(model: ModelConfig, train_chars: int, cfg: TrainConfig, device: torch.device,
                  processes: int) -> float | None:
    """How many times the budget lets `model` read the training text (None without a budget).

    --epochs says it; --steps counts windows; --time alone times a few steps of this shape.
    """
    from . import sizing

    per_step = cfg.batch_size * processes * cfg.seq_len
    counts = [cfg.epochs] if cfg.epochs else []
    if cfg.steps:
        counts.append(cfg.steps * per_step / max(train_chars, 1))
    if not counts and cfg.time_budget:
        counts.append(_timed_passes(model, train_chars, cfg, device, processes))
        if cfg.optimizer is None and sizing.optimizer_for(counts[0]) != "adamw":  # timed with AdamW: time its steps
            counts = [_timed_passes(model, train_chars, replace(cfg, optimizer=sizing.optimizer_for(counts[0])), device,
                                    processes)]
    return min(counts) if counts else None


def _timed_passes(model: ModelConfig, train_chars: int, cfg: TrainConfig, device: torch.device, processes: int) -> float:
    from . import sizing

    with autocast(device, autocast_dtype(cfg.precision, device, model.cell)):
        rate = _timer(cfg, device, None)(model, cfg.batch_size) * processes
    return sizing.readable_chars(rate, cfg.time_budget) / max(train_chars, 1)


def corpus_record(split: Corpus, model_config: ModelConfig, cfg: TrainConfig, sources: list[str],
                  doc_mode: dict | None) -> dict:
    """What every checkpoint of the run says about its vocabulary, configuration and corpus."""
    return {
        **split.vocab.record(),
        "model_config": model_config.to_dict(),
        "train_config": cfg.to_dict(),
        "corpus": {"fingerprint": split.fingerprint, "files": list(sources), "chars": split.chars,
                   "documents": split.documents, "train_chars": int(len(split.train)), "val_chars": int(len(split.val)),
                   # 8 bytes per distinct document, so `sample --novel` can drop copies of the corpus.
                   "doc_hashes": torch.from_numpy(split.doc_hashes),
                   **(doc_mode or {"lines": False, "doc_sep": None}),
                   **({"label_counts": split.label_counts} if split.label_counts else {})},
    }


def make_run_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharrnnError(f"cannot create the run directory {out}: {e.strerror}; choose another --out") from None
