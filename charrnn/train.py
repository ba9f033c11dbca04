"""Training: truncated BPTT over parallel streams, AdamW with warm-up and decay, checkpoints and resume.

The training stream (see corpus.Corpus) is cut into `batch_size` contiguous streams, one per row;
each step reads the next `seq_len` characters of every row and the hidden state carries over
(detached) from one window to the next. At an epoch boundary the streams restart at a new random
offset, so window boundaries move between epochs, and the state is reset.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint as ckpt_io
from . import distributed as dist_
from .config import TrainConfig
from .corpus import TextFiles, corpus_from_docs, prepare_corpus
from .data import Vocab
from .distributed import SOLO, World
from .errors import CharRNNError, UsageError
from .model import CharRNN, ModelConfig, State, detach_state, select_state
from .runtime import autocast, autocast_dtype

LN2 = math.log(2)
MAX_AUTO_EPOCHS = 50  # the cap when only --patience decides when to stop


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so --resume continues exactly."""

    step: int = 0
    epoch: int = 0
    window: int = 0  # next window of the current epoch
    offset: int = 0  # where the streams start in this epoch
    chars_seen: int = 0
    elapsed: float = 0.0  # seconds of training so far, over all sessions
    best_val: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    lr_scale: float = 1.0  # halved at each evaluation without improvement when no budget is given
    train_loss: float = math.nan
    stopped: str = ""


class Reporter:
    """Receives progress events; the CLI draws them, tests and library users may ignore them."""

    def start(self, info: dict) -> None: ...
    def step(self, progress: Progress, fraction: float | None, train_loss: float, chars_per_s: float, lr: float) -> None: ...
    def evaluation(self, record: dict, sample: str) -> None: ...
    def message(self, text: str) -> None: ...
    def reading(self, stage: str, done_bytes: int, total_bytes: int) -> None: ...
    def end(self, summary: dict) -> None: ...
    def close(self) -> None: ...


def fit_batch_shape(n_train: int, cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """Shrink batch_size (then seq_len) so that one epoch holds at least one window.

    Returns the config to use and a note saying what changed ("" when nothing did).
    One window needs batch_size * seq_len + 1 training characters.
    """
    usable = n_train - 1 - cfg.seq_len  # leave room for the epoch's random offset
    if usable >= cfg.batch_size * cfg.seq_len:
        return cfg, ""
    if n_train < 3:
        raise UsageError(f"the training text is too short ({n_train} ids); give at least a few characters of text")
    seq_len = cfg.seq_len
    batch = max(1, usable // seq_len) if usable > 0 else 1
    if usable < seq_len:
        seq_len = max(1, (n_train - 1) // 2)
        batch = 1
    new = replace(cfg, batch_size=batch, seq_len=seq_len)
    return new, (
        f"corpus is short ({n_train - 1:,} training chars): using --batch-size {batch} --seq-len {seq_len} "
        f"instead of {cfg.batch_size} x {cfg.seq_len}"
    )


def epoch_windows(n_train: int, batch: int, seq_len: int, offset: int) -> int:
    """Number of full windows per stream in an epoch whose streams start at `offset`."""
    return ((n_train - 1 - offset) // batch) // seq_len


def stream_starts(n_train: int, batch: int, seq_len: int, offset: int) -> np.ndarray:
    """Where each of the `batch` streams of an epoch starts (int64, (batch,)): contiguous stretches from `offset`."""
    stride = (n_train - 1 - offset) // batch
    return np.arange(batch, dtype=np.int64) * stride + offset


def window_ids(ids: np.ndarray, starts: np.ndarray, window: int, seq_len: int) -> np.ndarray:
    """Window `window` of every stream: (len(starts), seq_len + 1) int64 ids, read from `ids` (an array or a memmap).

    Row b holds ids[starts[b] + window * seq_len ...] for seq_len + 1 positions: inputs are
    [:, :-1], targets [:, 1:], so the target of one window's last position is the next window's
    first input. Only these positions are read, so a corpus on disk is never loaded whole.
    """
    idx = starts[:, None] + (window * seq_len + np.arange(seq_len + 1))[None, :]
    return ids[idx].astype(np.int64)


def epoch_layout(train_ids, batch: int, seq_len: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole epoch's inputs and targets (batch, windows * seq_len), as the windows deliver them (for tests)."""
    ids = np.asarray(train_ids)
    starts = stream_starts(len(ids), batch, seq_len, offset)
    windows = [window_ids(ids, starts, w, seq_len) for w in range(epoch_windows(len(ids), batch, seq_len, offset))]
    x = np.concatenate([w[:, :-1] for w in windows], axis=1)
    y = np.concatenate([w[:, 1:] for w in windows], axis=1)
    return torch.from_numpy(x), torch.from_numpy(y)


def lr_at(cfg: TrainConfig, step: int, fraction: float | None, lr_scale: float) -> float:
    """Linear warm-up, then cosine decay to min_lr_frac over the budget (or plateau halving without one)."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    if fraction is None:
        return cfg.lr * warm * lr_scale
    f = min(1.0, max(0.0, fraction))
    return cfg.lr * warm * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * f)))


@torch.no_grad()
def evaluate(model: CharRNN, ids: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
             window: int = 512, burn_in: int = 256, min_stream: int = 4096, max_streams: int = 64,
             max_chars: int | None = None, shard: tuple[int, int] = (0, 1)) -> tuple[float, int]:
    """Total negative log-likelihood (nats) of ids[1:] given everything before, and the count scored.

    The text is cut into up to `max_streams` stretches scored in parallel with the state carried
    within each; a stretch first reads the `burn_in` characters before it (unscored), so every
    character is scored with at least that much context, as in a single carried pass. With
    `max_chars`, each stretch scores only its first max_chars / streams characters: a sample spread
    evenly over a long text. ids may be a memmap: only the windows being scored are read.
    shard (rank, size): score only every size-th stretch from rank; the shards' sums add up to the whole.
    """
    ids = ids.numpy() if isinstance(ids, torch.Tensor) else ids
    n = len(ids) - 1
    if n < 1:
        return 0.0, 0
    was_training = model.training
    model.eval()
    k = max(1, min(max_streams, n // min_stream))
    bounds = np.array([c * n // k for c in range(k + 1)], dtype=np.int64)
    s, e = bounds[:-1], bounds[1:]
    if max_chars is not None and max_chars < n:
        e = np.minimum(e, s + max(1, max_chars // k))
    s, e = s[shard[0] :: shard[1]], e[shard[0] :: shard[1]]
    if len(s) == 0:
        return 0.0, 0
    b = np.maximum(0, s - burn_in)  # each stretch reads from b, scores targets s+1 .. e
    length = e - b
    total = torch.zeros((), dtype=torch.float64, device=device)
    state = None
    for t in range(0, int(length.max()), window):
        j = np.arange(t, min(t + window, int(length.max())))
        valid = j[None, :] < length[:, None]
        pos = np.where(valid, b[:, None] + j[None, :], 0)
        x = torch.from_numpy(ids[pos].astype(np.int64))
        y = ids[pos + valid].astype(np.int64)  # the next id where valid (masked below where not)
        y[~valid | (j[None, :] < (s - b)[:, None])] = -100  # padding and burn-in: read, not scored
        logits, state = model(x.to(device), state)
        total += F.cross_entropy(logits.float().flatten(0, 1), torch.from_numpy(y).to(device).flatten(),
                                 ignore_index=-100, reduction="sum")
    model.train(was_training)
    return float(total), int((e - s).sum())


def _rng_state(gen: torch.Generator) -> dict:
    out = {"data": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _set_rng_state(gen: torch.Generator, rng: dict) -> None:
    gen.set_state(rng["data"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _state_to_cpu(state: State | None):
    if state is None:
        return None
    return [s.detach().cpu() for s in state] if isinstance(state, tuple) else [state.detach().cpu()]


def _state_from_saved(saved, device) -> State | None:
    if not saved:
        return None
    return tuple(s.to(device) for s in saved) if len(saved) == 2 else saved[0].to(device)


class _StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step; a second one interrupts at once."""

    SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}

    def __init__(self):
        self.requested = ""
        self._old: dict = {}

    def __enter__(self):
        for sig in self.SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = self.SIGNALS[signum]

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class TrainResult:
    out_dir: Path
    progress: Progress
    best_val_bpc: float
    chars_per_s: float
    metrics: list[dict] = field(default_factory=list)


def _load_for_resume(out: Path) -> dict:
    last = out / "last.pt"
    if not last.exists():
        raise UsageError(f"--resume: {last} does not exist; train without --resume first, or point --out at the run")
    return ckpt_io.load_checkpoint(last)


def _refuse_contradictions(prev: dict, fp: str, model_cfg: dict, force: bool) -> None:
    """Refuse to resume on another corpus or with other model flags (unless forced), naming each difference."""
    diffs = []
    if prev["corpus"]["fingerprint"] != fp:
        diffs.append("the corpus differs from the one it was trained on")
    for k, v in model_cfg.items():
        if prev["model_config"].get(k) != v:
            diffs.append(f"{k} {prev['model_config'].get(k)} in the checkpoint, {v} asked for")
    if diffs and not force:
        raise UsageError(f"--resume refused: {'; '.join(diffs)}. Drop the conflicting flags, or add --force")


def _draw_loss(out: Path, metrics: list[dict]) -> None:
    """loss.png beside the checkpoints; quietly nothing when matplotlib is missing or the image cannot be written."""
    from .plot import write_png

    with contextlib.suppress(UsageError):
        write_png([(out.name, metrics)], out / "loss.png")


def _make_run_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharRNNError(f"cannot create the run directory {out}: {e.strerror}; choose another --out") from None


def _optimizer(model: CharRNN, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on the recurrent and output matrices only (not embeddings, not biases)."""
    def decays(name: str, p: torch.Tensor) -> bool:
        return p.dim() >= 2 and not name.startswith("embed")

    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if decays(n, p)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), **({"fused": True} if device.type == "cuda" else {}))


def new_model_config(given: dict, vocab_size: int, train_chars: int, cfg: TrainConfig, device: torch.device,
                     rep: Reporter) -> ModelConfig:
    """The model for a new run: the fields in `given`, the rest from ModelConfig's defaults.

    Under a time budget with neither layers nor hidden given, the size (and its dropout, unless
    given) is the one sizing.choose_model finds the budget can train well on this device.
    """
    if not (cfg.time_budget and "layers" not in given and "hidden" not in given):
        return ModelConfig(vocab_size=vocab_size, **given)
    from .sizing import choose_model

    base = ModelConfig(vocab_size=vocab_size, **given)
    with autocast(device, autocast_dtype(cfg.precision, device)):
        pick = choose_model(base, train_chars, cfg.time_budget, cfg.batch_size, cfg.seq_len, device)
    rep.message(f"--time {cfg.time_budget:g}s: chose {pick.layers} x {pick.hidden} ({pick.params:,} parameters): "
                f"{pick.reason}. Give --layers/--hidden to choose yourself")
    return replace(base, layers=pick.layers, hidden=pick.hidden, dropout=given.get("dropout", pick.dropout))


def train(docs: list[str] | TextFiles, model_cfg: dict, cfg: TrainConfig, out_dir: str | Path, *,
          sources: list[str] | None = None, resume: bool = False, force: bool = False, reporter: Reporter | None = None,
          sample_every_eval: int = 200, doc_mode: dict | None = None, world: World = SOLO,
          plot: bool = False) -> TrainResult:
    """Train a model on `docs` and write checkpoints to `out_dir`.

    docs: documents in memory (EOS follows each), or TextFiles, streamed from disk into token
    arrays cached in out_dir/corpus (see corpus.py) so that corpora larger than memory train.
    model_cfg holds ModelConfig fields other than vocab_size. doc_mode ({"lines": bool, "doc_sep": str
    or None}) records how the text was cut into documents, so eval can cut other text the same way.
    Writes best.pt (lowest validation loss), last.pt (the latest state, for --resume) and
    metrics.jsonl (one JSON object per evaluation). Returns when the budget is spent, patience runs out, or Ctrl-C is pressed.
    plot: also draw loss.png in out_dir at each evaluation, when matplotlib is installed.
    world: this process's place among torchrun's processes (distributed.from_env); each rank trains
    cfg.batch_size streams of the world's batch_size x size, and rank 0 alone writes files.
    """
    from .sample import generate_text

    rep = reporter or Reporter()
    out = Path(out_dir)
    if isinstance(docs, TextFiles):
        sources = sources or [str(p) for p in docs.paths]
    else:
        sources = sources or [f"<document {i}>" for i in range(len(docs))]
    device = world.device(cfg.device)
    autocast_dtype(cfg.precision, device)  # refuse an impossible --precision before any work
    if cfg.seq_len < 1 or cfg.batch_size < 1:
        raise UsageError("--seq-len and --batch-size must be at least 1")
    if cfg.lr <= 0 or not math.isfinite(cfg.lr):
        raise UsageError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.val_frac == 0 and not (cfg.steps or cfg.epochs or cfg.time_budget):
        raise UsageError("with --val-frac 0 there is nothing to judge progress by; give --steps, --epochs or --time")

    prev = _load_for_resume(out) if resume else None
    vocab = model_config = None
    if prev is not None:
        vocab = Vocab(prev["vocab"])
        model_config = ModelConfig(**prev["model_config"])
        # The run's own settings stand; only how long to go on, how often to evaluate, and where may
        # change. Without a new budget, the run's own budget (say --time 10m) is finished.
        changes = {"device": cfg.device, "patience": cfg.patience, "precision": cfg.precision, "compile": cfg.compile}
        if cfg.epochs or cfg.steps or cfg.time_budget:
            changes.update(epochs=cfg.epochs, steps=cfg.steps, time_budget=cfg.time_budget)
        if cfg.eval_every:
            changes["eval_every"] = cfg.eval_every
        cfg = replace(TrainConfig(**prev["train_config"]), **changes)
    if isinstance(docs, TextFiles):
        def prepare():
            return prepare_corpus(list(docs.paths), out / "corpus", cfg.val_frac, docs.encoding, docs.errors, vocab=vocab,
                                  max_vocab=cfg.max_vocab, progress=rep.reading)

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
        split = prepare()
    else:
        split = corpus_from_docs(docs, vocab, cfg.val_frac, cfg.whole_documents, cfg.seed, cfg.max_vocab)
    if prev is not None:
        _refuse_contradictions(prev, split.fingerprint, model_cfg, force)
    vocab = split.vocab
    if world.parallel and len(split.train) - 1 - cfg.seq_len < cfg.batch_size * world.size * cfg.seq_len:
        raise UsageError(f"the training text ({len(split.train):,} ids) is too short for {world.size} processes x "
                         f"--batch-size {cfg.batch_size} x --seq-len {cfg.seq_len}; use fewer processes or smaller batches")
    cfg, note = fit_batch_shape(len(split.train), cfg)
    if note:
        rep.message(note)
    sizing_seconds = 0.0
    if model_config is None:
        t0 = time.perf_counter()
        # Measured speeds differ between processes: rank 0 chooses for all.
        if world.main:
            model_config = new_model_config(model_cfg, len(vocab), len(split.train), cfg, device, rep)
        model_config = dist_.from_main(world, model_config)
        sizing_seconds = time.perf_counter() - t0

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = CharRNN(model_config).to(device)
    if world.parallel:
        torch.manual_seed(cfg.seed + 1 + world.rank)  # same initial weights, but each rank its own dropout masks
    opt = _optimizer(model, cfg, device)
    amp_dtype = autocast_dtype(cfg.precision, device)
    # fp16 needs its loss scaled so small gradients do not flush to zero; bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    fwd = model
    if world.parallel:
        from torch.nn.parallel import DistributedDataParallel

        fwd = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    fwd = torch.compile(fwd) if cfg.compile else fwd  # weights are shared: save and evaluate `model`
    prog = Progress(elapsed=sizing_seconds)  # choosing the size is part of the budget
    metrics: list[dict] = []
    carried = None
    if prev is not None:
        model.load_state_dict(prev["model"])
        opt.load_state_dict(prev["optimizer"])
        if scaler is not None and prev.get("scaler"):
            scaler.load_state_dict(prev["scaler"])
        prog = Progress(**prev["progress"])
        prog.stopped = ""
        metrics = list(prev.get("metrics", []))
        saved_world = prev.get("world", 1)
        if saved_world != world.size:
            raise UsageError(f"--resume: the run was trained by {saved_world} process(es); resume it with as many "
                             f"(torchrun --nproc_per_node={saved_world}), since each owns its streams' state")
        _set_rng_state(gen, prev.get("rng_ranks", [prev["rng"]])[world.rank])
        carried = _state_from_saved(prev.get("state"), device)
        if carried is not None and world.parallel:  # the saved state holds every rank's streams
            carried = select_state(carried, torch.arange(world.rank * cfg.batch_size, (world.rank + 1) * cfg.batch_size,
                                                         device=device))

    train_ids = split.train  # numpy: an array, or a memmap of a corpus on disk
    pin = device.type == "cuda"  # page-locked copies let the host-to-GPU transfer run asynchronously
    streams = cfg.batch_size * world.size  # the world's streams; this rank owns a contiguous block of them
    mine = slice(world.rank * cfg.batch_size, (world.rank + 1) * cfg.batch_size)
    steps_per_epoch = epoch_windows(len(train_ids), streams, cfg.seq_len, cfg.seq_len // 2)
    horizon_steps = None
    if cfg.steps:
        horizon_steps = cfg.steps
    if cfg.epochs:
        e_steps = max(1, int(round(cfg.epochs * steps_per_epoch)))
        horizon_steps = min(horizon_steps or e_steps, e_steps)
    eval_every = cfg.eval_every or (max(1, horizon_steps // 12) if horizon_steps else min(250, max(1, steps_per_epoch)))
    eval_seconds = cfg.time_budget / 12 if (cfg.time_budget and not cfg.eval_every) else None
    cap_steps = None if (horizon_steps or cfg.time_budget) else MAX_AUTO_EPOCHS * steps_per_epoch

    # Under torchrun ranks read their own clocks and signals; every decision that depends on them
    # (the learning rate, when to evaluate or stop) uses `agreed`, the slowest rank's time and any
    # rank's stop request, updated at the sync points. One process decides on its own at once.
    agreed = {"elapsed": prog.elapsed, "stop": ""}

    def clock() -> float:
        return agreed["elapsed"] if world.parallel else prog.elapsed

    def fraction() -> float | None:
        fs = []
        if horizon_steps:
            fs.append(prog.step / horizon_steps)
        if cfg.time_budget:
            fs.append(clock() / cfg.time_budget)
        return max(fs) if fs else None

    base = {
        "vocab": list(vocab.chars),
        "model_config": model_config.to_dict(),
        "train_config": cfg.to_dict(),
        "corpus": {"fingerprint": split.fingerprint, "files": list(sources), "chars": split.chars,
                   "documents": split.documents, "train_chars": int(len(split.train)), "val_chars": int(len(split.val)),
                   # 8 bytes per distinct document, so `sample --novel` can drop copies of the corpus.
                   "doc_hashes": torch.from_numpy(split.doc_hashes),
                   **(doc_mode or {"lines": False, "doc_sep": None})},
    }

    def payload() -> dict:
        """The checkpoint; a collective under torchrun (every rank's RNG and carried state go into it)."""
        rngs = dist_.gather(world, _rng_state(gen))
        states = dist_.gather(world, _state_to_cpu(carried))
        state = None if states[0] is None else [torch.cat(parts, dim=1) for parts in zip(*states, strict=True)]
        return dict(base, model=model.state_dict(), optimizer=opt.state_dict(), progress=asdict(prog), metrics=metrics,
                    rng=rngs[0], rng_ranks=rngs, world=world.size, state=state,
                    scaler=scaler.state_dict() if scaler is not None else None)

    def save(path: Path, snapshot: dict) -> None:
        if world.main:
            ckpt_io.save_checkpoint(snapshot, path)

    rep.start({
        "device": str(device), "threads": torch.get_num_threads(),
        "precision": str(amp_dtype or torch.float32).removeprefix("torch."),
        "params": model.num_params(), "vocab_size": len(vocab), "train_chars": len(split.train),
        "val_chars": len(split.val), "config": cfg, "model_config": model_config, "steps_per_epoch": steps_per_epoch,
        "horizon_steps": horizon_steps, "resumed_at": prog.step if prev is not None else None, "out": str(out),
    })
    metrics_path = out / "metrics.jsonl"
    if world.main:
        _make_run_dir(out)
        # The checkpoint's record is the truth: a crash may have left lines past last.pt.
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in metrics))

    def run_eval() -> dict:
        t0 = time.perf_counter()
        record = {"step": prog.step, "epoch": prog.epoch, "chars_seen": prog.chars_seen,
                  "elapsed": round(prog.elapsed, 3), "train_loss": round(prog.train_loss, 5),
                  "lr": lr_at(cfg, prog.step, fraction(), prog.lr_scale), "chars_per_s": round(chars_per_s(), 1)}
        if len(split.val) >= 2:
            nll, n = evaluate(model, split.val, device, max_chars=cfg.eval_chars, shard=(world.rank, world.size))
            nll, n = dist_.all_sum(world, [nll, n], device)
            record["val_loss"] = round(nll / n, 5)
            record["val_bpc"] = round(nll / n / LN2, 5)
        val = record.get("val_loss")
        improved = val is None or val < prog.best_val  # without validation, the newest model is the best
        if improved:
            prog.best_val = val if val is not None else math.nan
            prog.best_step = prog.step
            prog.bad_evals = 0
        else:
            prog.bad_evals += 1
            if fraction() is None:
                prog.lr_scale *= 0.5
        metrics.append(record)
        if world.main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        snapshot = payload()
        if improved:
            save(out / "best.pt", snapshot)
        save(out / "last.pt", snapshot)
        if plot and world.main:
            _draw_loss(out, metrics)
        sample = generate_text(model, vocab, prime="", length=sample_every_eval, temperature=0.8, seed=cfg.seed,
                               device=device) if sample_every_eval and world.main else ""
        prog.elapsed += time.perf_counter() - t0
        rep.evaluation(record, sample)
        return record

    window_chars = streams * cfg.seq_len
    timed = {"chars": 0, "seconds": 0.0}

    def chars_per_s() -> float:
        return timed["chars"] / timed["seconds"] if timed["seconds"] > 0 else 0.0

    starts = None
    loss_acc = torch.zeros((), device=device)
    loss_n = 0
    next_eval_time = (math.floor(prog.elapsed / eval_seconds) + 1) * eval_seconds if eval_seconds else None
    model.train()
    with _StopFlag() as stop:
        try:
            while True:
                # Decide whether to stop before taking a step.
                requested = agreed["stop"] if world.parallel else stop.requested
                if horizon_steps and prog.step >= horizon_steps:
                    prog.stopped = "budget"
                elif cfg.time_budget and clock() >= cfg.time_budget:
                    prog.stopped = "time"
                elif cap_steps and prog.step >= cap_steps:
                    prog.stopped = "cap"
                elif fraction() is None and prog.bad_evals >= cfg.patience:
                    prog.stopped = "patience"
                elif requested:
                    prog.stopped = requested
                if prog.stopped:
                    break
                t0 = time.perf_counter()
                if starts is None and prog.window > 0:  # resumed mid-epoch: that epoch's streams
                    starts = stream_starts(len(train_ids), streams, cfg.seq_len, prog.offset)[mine]
                if starts is None or prog.window >= epoch_windows(len(train_ids), streams, cfg.seq_len, prog.offset):
                    if starts is not None:
                        prog.epoch += 1
                    prog.window = 0
                    prog.offset = int(torch.randint(0, cfg.seq_len, (1,), generator=gen))
                    carried = None  # the streams restart, so does their state
                    starts = stream_starts(len(train_ids), streams, cfg.seq_len, prog.offset)[mine]
                xy = torch.from_numpy(window_ids(train_ids, starts, prog.window, cfg.seq_len))
                xy = (xy.pin_memory() if pin else xy).to(device, non_blocking=True)
                x, y = xy[:, :-1], xy[:, 1:]
                lr = lr_at(cfg, prog.step, fraction(), prog.lr_scale)
                for g in opt.param_groups:
                    g["lr"] = lr
                with autocast(device, amp_dtype):
                    logits, carried = fwd(x, carried)
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
                opt.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                    opt.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                    scaler.step(opt)
                    scaler.update()
                carried = detach_state(carried)
                loss_acc += loss.detach()
                loss_n += 1
                prog.step += 1
                prog.window += 1
                prog.chars_seen += window_chars
                dt = time.perf_counter() - t0
                prog.elapsed += dt
                if loss_n >= 10 or prog.step % eval_every == 0:  # the same steps on every rank
                    total, count = dist_.all_sum(world, [float(loss_acc), loss_n], device)  # one host sync per 10 steps
                    prog.train_loss = total / count
                    loss_acc.zero_()
                    loss_n = 0
                    if world.parallel:
                        slowest, asked = dist_.all_max(world, [prog.elapsed, float(bool(stop.requested))], device)
                        agreed["elapsed"] = slowest
                        agreed["stop"] = stop.requested or ("interrupted" if asked else "")
                timed["chars"] += window_chars
                timed["seconds"] += dt
                rep.step(prog, fraction(), prog.train_loss, chars_per_s(), lr)
                due = prog.step % eval_every == 0 if not eval_seconds else clock() >= next_eval_time
                if due:
                    run_eval()
                    if eval_seconds:
                        next_eval_time = (math.floor(clock() / eval_seconds) + 1) * eval_seconds
        except KeyboardInterrupt:
            # A second Ctrl-C: leave at once. The step in flight may be half applied, so nothing
            # more is written; best.pt and last.pt on disk are the last complete ones.
            rep.close()
            raise
    if loss_n:
        total, count = dist_.all_sum(world, [float(loss_acc), loss_n], device)
        prog.train_loss = total / count
    if not metrics or metrics[-1]["step"] != prog.step:
        if prog.step > 0 and prog.stopped not in _StopFlag.SIGNALS.values():
            run_eval()
        else:
            save(out / "last.pt", payload())
    best_bpc = prog.best_val / LN2 if math.isfinite(prog.best_val) else math.nan
    result = TrainResult(out_dir=out, progress=prog, best_val_bpc=best_bpc, chars_per_s=chars_per_s(), metrics=metrics)
    rep.end({"progress": prog, "best_val_bpc": best_bpc, "chars_per_s": chars_per_s(), "out": str(out)})
    return result
