"""Training: truncated BPTT over parallel streams, AdamW with warm-up and decay, checkpoints and resume.

The training stream (see data.Split) is cut into `batch_size` contiguous streams, one per row;
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
from .config import TrainConfig
from .data import Split, Vocab, check_vocab_size, doc_hash, fingerprint, split_documents
from .errors import CharRNNError, UsageError
from .model import CharRNN, ModelConfig, State, detach_state
from .runtime import autocast, autocast_dtype, pick_device

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


def epoch_layout(train_ids: torch.Tensor, batch: int, seq_len: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (batch, stream_len): row b is the b-th contiguous stretch of the stream.

    targets[b, t] == inputs[b, t + 1], and the stream_len is a multiple of seq_len, so the target of
    one window's last position is the next window's first input.
    """
    length = epoch_windows(len(train_ids), batch, seq_len, offset) * seq_len
    stride = (len(train_ids) - 1 - offset) // batch
    rows = torch.arange(batch, device=train_ids.device) * stride + offset
    idx = rows[:, None] + torch.arange(length + 1, device=train_ids.device)[None, :]
    data = train_ids[idx]
    return data[:, :-1], data[:, 1:]


def lr_at(cfg: TrainConfig, step: int, fraction: float | None, lr_scale: float) -> float:
    """Linear warm-up, then cosine decay to min_lr_frac over the budget (or plateau halving without one)."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    if fraction is None:
        return cfg.lr * warm * lr_scale
    f = min(1.0, max(0.0, fraction))
    return cfg.lr * warm * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * f)))


@torch.no_grad()
def evaluate(model: CharRNN, ids: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
             window: int = 512, burn_in: int = 256, min_stream: int = 4096, max_streams: int = 64) -> tuple[float, int]:
    """Total negative log-likelihood (nats) of ids[1:] given everything before, and the count scored.

    The text is cut into up to `max_streams` stretches scored in parallel with the state carried
    within each; a stretch first reads the `burn_in` characters before it (unscored), so every
    character is scored with at least that much context, as in a single carried pass.
    """
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    n = len(ids) - 1
    if n < 1:
        return 0.0, 0
    was_training = model.training
    model.eval()
    k = max(1, min(max_streams, n // min_stream))
    bounds = [c * n // k for c in range(k + 1)]
    rows_x, rows_y = [], []
    for c in range(k):
        s, e = bounds[c], bounds[c + 1]
        b = max(0, s - burn_in)
        y = ids[b + 1 : e + 1].clone()
        y[: s - b] = -100  # burn-in: read, not scored
        rows_x.append(ids[b:e])
        rows_y.append(y)
    width = max(len(r) for r in rows_x)
    x = torch.zeros(k, width, dtype=torch.long)
    y = torch.full((k, width), -100, dtype=torch.long)
    for i, (rx, ry) in enumerate(zip(rows_x, rows_y, strict=False)):
        x[i, : len(rx)] = rx
        y[i, : len(ry)] = ry
    x, y = x.to(device), y.to(device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    state = None
    for t in range(0, width, window):
        logits, state = model(x[:, t : t + window], state)
        total += F.cross_entropy(logits.float().flatten(0, 1), y[:, t : t + window].flatten(), ignore_index=-100, reduction="sum")
    model.train(was_training)
    return float(total), n


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


def _load_for_resume(out: Path, docs: list[str], fp: str, model_cfg: dict, force: bool) -> dict:
    """last.pt of the run in `out`, after checking that the corpus and model flags agree with it."""
    last = out / "last.pt"
    if not last.exists():
        raise UsageError(f"--resume: {last} does not exist; train without --resume first, or point --out at the run")
    prev = ckpt_io.load_checkpoint(last)
    diffs = []
    if prev["corpus"]["fingerprint"] != fp:
        diffs.append("the corpus differs from the one it was trained on")
    for k, v in model_cfg.items():
        if prev["model_config"].get(k) != v:
            diffs.append(f"{k} {prev['model_config'].get(k)} in the checkpoint, {v} asked for")
    if diffs and not force:
        raise UsageError(f"--resume refused: {'; '.join(diffs)}. Drop the conflicting flags, or add --force")
    vocab = Vocab(prev["vocab"])
    if any(vocab.missing(d) for d in docs):
        raise UsageError("--resume: the corpus has characters the checkpoint's vocabulary lacks; start a new run")
    return prev


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


def train(docs: list[str], model_cfg: dict, cfg: TrainConfig, out_dir: str | Path, *, sources: list[str] | None = None,
          resume: bool = False, force: bool = False, reporter: Reporter | None = None,
          sample_every_eval: int = 200, doc_mode: dict | None = None) -> TrainResult:
    """Train a model on `docs` (each a document: EOS follows it) and write checkpoints to `out_dir`.

    model_cfg holds ModelConfig fields other than vocab_size. doc_mode ({"lines": bool, "doc_sep": str
    or None}) records how the text was cut into documents, so eval can cut other text the same way.
    Writes best.pt (lowest validation loss), last.pt (the latest state, for --resume) and
    metrics.jsonl (one JSON object per evaluation). Returns when the budget is spent, patience runs out, or Ctrl-C is pressed.
    """
    from .sample import generate_text

    rep = reporter or Reporter()
    out = Path(out_dir)
    sources = sources or [f"<document {i}>" for i in range(len(docs))]
    device = pick_device(cfg.device)
    if cfg.seq_len < 1 or cfg.batch_size < 1:
        raise UsageError("--seq-len and --batch-size must be at least 1")
    if cfg.lr <= 0 or not math.isfinite(cfg.lr):
        raise UsageError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.val_frac == 0 and not (cfg.steps or cfg.epochs or cfg.time_budget):
        raise UsageError("with --val-frac 0 there is nothing to judge progress by; give --steps, --epochs or --time")

    fp = fingerprint(docs)
    prev = _load_for_resume(out, docs, fp, model_cfg, force) if resume else None
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
    else:
        vocab = Vocab.from_texts(docs)
        check_vocab_size(vocab, cfg.max_vocab)
        model_config = None

    split: Split = split_documents(docs, vocab, cfg.val_frac, whole=cfg.whole_documents, seed=cfg.seed)
    cfg, note = fit_batch_shape(len(split.train), cfg)
    if note:
        rep.message(note)
    sizing_seconds = 0.0
    if model_config is None:
        t0 = time.perf_counter()
        model_config = new_model_config(model_cfg, len(vocab), len(split.train), cfg, device, rep)
        sizing_seconds = time.perf_counter() - t0

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = CharRNN(model_config).to(device)
    opt = _optimizer(model, cfg, device)
    amp_dtype = autocast_dtype(cfg.precision, device)
    # fp16 needs its loss scaled so small gradients do not flush to zero; bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    fwd = torch.compile(model) if cfg.compile else model  # weights are shared: save and evaluate `model`
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
        _set_rng_state(gen, prev["rng"])
        carried = _state_from_saved(prev.get("state"), device)

    train_ids = torch.from_numpy(split.train).to(device)
    steps_per_epoch = epoch_windows(len(train_ids), cfg.batch_size, cfg.seq_len, cfg.seq_len // 2)
    horizon_steps = None
    if cfg.steps:
        horizon_steps = cfg.steps
    if cfg.epochs:
        e_steps = max(1, int(round(cfg.epochs * steps_per_epoch)))
        horizon_steps = min(horizon_steps or e_steps, e_steps)
    eval_every = cfg.eval_every or (max(1, horizon_steps // 12) if horizon_steps else min(250, max(1, steps_per_epoch)))
    eval_seconds = cfg.time_budget / 12 if (cfg.time_budget and not cfg.eval_every) else None
    cap_steps = None if (horizon_steps or cfg.time_budget) else MAX_AUTO_EPOCHS * steps_per_epoch

    def fraction() -> float | None:
        fs = []
        if horizon_steps:
            fs.append(prog.step / horizon_steps)
        if cfg.time_budget:
            fs.append(prog.elapsed / cfg.time_budget)
        return max(fs) if fs else None

    base = {
        "vocab": list(vocab.chars),
        "model_config": model_config.to_dict(),
        "train_config": cfg.to_dict(),
        "corpus": {"fingerprint": fp, "files": list(sources), "chars": int(sum(len(d) for d in docs)),
                   "documents": len(docs), "train_chars": int(len(split.train)), "val_chars": int(len(split.val)),
                   # 8 bytes per distinct document, so `sample --novel` can drop copies of the corpus.
                   "doc_hashes": torch.tensor(sorted({doc_hash(d) for d in docs}), dtype=torch.int64),
                   **(doc_mode or {"lines": False, "doc_sep": None})},
    }

    def payload() -> dict:
        return dict(base, model=model.state_dict(), optimizer=opt.state_dict(), progress=asdict(prog), metrics=metrics,
                    rng=_rng_state(gen), state=_state_to_cpu(carried),
                    scaler=scaler.state_dict() if scaler is not None else None)

    rep.start({
        "device": str(device), "threads": torch.get_num_threads(),
        "precision": str(amp_dtype or torch.float32).removeprefix("torch."),
        "params": model.num_params(), "vocab_size": len(vocab), "train_chars": len(split.train),
        "val_chars": len(split.val), "config": cfg, "model_config": model_config, "steps_per_epoch": steps_per_epoch,
        "horizon_steps": horizon_steps, "resumed_at": prog.step if prev is not None else None, "out": str(out),
    })
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharRNNError(f"cannot create the run directory {out}: {e.strerror}; choose another --out") from None
    metrics_path = out / "metrics.jsonl"
    # The checkpoint's record is the truth: a crash may have left lines past last.pt.
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in metrics))

    def run_eval() -> dict:
        t0 = time.perf_counter()
        record = {"step": prog.step, "epoch": prog.epoch, "chars_seen": prog.chars_seen,
                  "elapsed": round(prog.elapsed, 3), "train_loss": round(prog.train_loss, 5),
                  "lr": lr_at(cfg, prog.step, fraction(), prog.lr_scale), "chars_per_s": round(chars_per_s(), 1)}
        if len(split.val) >= 2:
            nll, n = evaluate(model, split.val, device)
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
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        snapshot = payload()
        if improved:
            ckpt_io.save_checkpoint(snapshot, out / "best.pt")
        ckpt_io.save_checkpoint(snapshot, out / "last.pt")
        sample = generate_text(model, vocab, prime="", length=sample_every_eval, temperature=0.8, seed=cfg.seed,
                               device=device) if sample_every_eval else ""
        prog.elapsed += time.perf_counter() - t0
        rep.evaluation(record, sample)
        return record

    window_chars = cfg.batch_size * cfg.seq_len
    timed = {"chars": 0, "seconds": 0.0}

    def chars_per_s() -> float:
        return timed["chars"] / timed["seconds"] if timed["seconds"] > 0 else 0.0

    x_all = y_all = None
    loss_acc = torch.zeros((), device=device)
    loss_n = 0
    next_eval_time = (math.floor(prog.elapsed / eval_seconds) + 1) * eval_seconds if eval_seconds else None
    model.train()
    with _StopFlag() as stop:
        try:
            while True:
                # Decide whether to stop before taking a step.
                if horizon_steps and prog.step >= horizon_steps:
                    prog.stopped = "budget"
                elif cfg.time_budget and prog.elapsed >= cfg.time_budget:
                    prog.stopped = "time"
                elif cap_steps and prog.step >= cap_steps:
                    prog.stopped = "cap"
                elif fraction() is None and prog.bad_evals >= cfg.patience:
                    prog.stopped = "patience"
                elif stop.requested:
                    prog.stopped = stop.requested
                if prog.stopped:
                    break
                t0 = time.perf_counter()
                if x_all is None and prog.window > 0:  # resumed mid-epoch: rebuild that epoch's layout
                    x_all, y_all = epoch_layout(train_ids, cfg.batch_size, cfg.seq_len, prog.offset)
                if x_all is None or prog.window >= x_all.shape[1] // cfg.seq_len:
                    if x_all is not None:
                        prog.epoch += 1
                    prog.window = 0
                    prog.offset = int(torch.randint(0, cfg.seq_len, (1,), generator=gen))
                    carried = None  # the streams restart, so does their state
                    x_all, y_all = epoch_layout(train_ids, cfg.batch_size, cfg.seq_len, prog.offset)
                lo = prog.window * cfg.seq_len
                x, y = x_all[:, lo : lo + cfg.seq_len], y_all[:, lo : lo + cfg.seq_len]
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
                if loss_n >= 10 or prog.step % eval_every == 0:
                    prog.train_loss = float(loss_acc) / loss_n  # one host sync per 10 steps
                    loss_acc.zero_()
                    loss_n = 0
                dt = time.perf_counter() - t0
                prog.elapsed += dt
                timed["chars"] += window_chars
                timed["seconds"] += dt
                rep.step(prog, fraction(), prog.train_loss, chars_per_s(), lr)
                due = prog.step % eval_every == 0 if not eval_seconds else prog.elapsed >= next_eval_time
                if due:
                    run_eval()
                    if eval_seconds:
                        next_eval_time = (math.floor(prog.elapsed / eval_seconds) + 1) * eval_seconds
        except KeyboardInterrupt:
            # A second Ctrl-C: leave at once. The step in flight may be half applied, so nothing
            # more is written; best.pt and last.pt on disk are the last complete ones.
            rep.close()
            raise
    if loss_n:
        prog.train_loss = float(loss_acc) / loss_n
    if not metrics or metrics[-1]["step"] != prog.step:
        if prog.step > 0 and prog.stopped not in _StopFlag.SIGNALS.values():
            run_eval()
        else:
            ckpt_io.save_checkpoint(payload(), out / "last.pt")
    best_bpc = prog.best_val / LN2 if math.isfinite(prog.best_val) else math.nan
    result = TrainResult(out_dir=out, progress=prog, best_val_bpc=best_bpc, chars_per_s=chars_per_s(), metrics=metrics)
    rep.end({"progress": prog, "best_val_bpc": best_bpc, "chars_per_s": chars_per_s(), "out": str(out)})
    return result
