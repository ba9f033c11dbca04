"""The charrnn command line: parse, call the library, print. Torch is imported inside commands so --help is instant."""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train a character-level LSTM on any text, then generate text like it.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int):
    _stderr().print(f"[red]charrnn: error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def command(fn):
    """Map library errors to one-line messages and exit codes; a closed stdout ends quietly."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import CharRNNError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except CharRNNError as e:
            if os.environ.get("CHARRNN_DEBUG"):
                raise
            from rich.markup import escape

            _fail(escape(str(e)), e.exit_code)
        except BrokenPipeError:
            # The reader went away (| head): stop quietly; point stdout at /dev/null so the exit flush is silent.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0)
        except KeyboardInterrupt:
            _stderr().print("interrupted")
            raise typer.Exit(130)
        except Exception as e:
            if os.environ.get("CHARRNN_DEBUG"):
                raise
            from rich.markup import escape

            _fail(escape(f"internal error: {type(e).__name__}: {e} (set CHARRNN_DEBUG=1 for a traceback)"), 1)

    return wrapper


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)?")


def parse_duration(text: str) -> float:
    """'90s', '10m', '2h', '1h30m' or plain seconds -> seconds."""
    from .errors import UsageError

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


@app.command()
@command
def train(
    paths: list[Path] = typer.Argument(..., help="Text files (UTF-8); each is a document, ended by EOS.", show_default=False),
    cell: Optional[str] = typer.Option(None, help="Recurrent cell: lstm, gru or rnn. [default: lstm]"),
    layers: Optional[int] = typer.Option(None, help="Stacked recurrent layers. [default: 2]"),
    hidden: Optional[int] = typer.Option(None, help="Hidden units per layer. [default: 512]"),
    embed: Optional[int] = typer.Option(None, help="Character embedding size. [default: 64]"),
    dropout: Optional[float] = typer.Option(None, help="Dropout between layers and before the output. [default: 0.1]"),
    seq_len: int = typer.Option(128, help="Truncated-BPTT window: characters per stream per step."),
    batch_size: int = typer.Option(64, help="Parallel streams per step."),
    lr: float = typer.Option(3e-3, help="Peak learning rate (AdamW)."),
    warmup: int = typer.Option(100, help="Steps of linear learning-rate warm-up."),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay on matrices."),
    clip: float = typer.Option(1.0, help="Clip the global gradient norm to this."),
    epochs: Optional[float] = typer.Option(None, help="Stop after this many passes over the data."),
    steps: Optional[int] = typer.Option(None, help="Stop after this many steps."),
    time_budget: Optional[str] = typer.Option(None, "--time", help="Stop after this much time: 90s, 10m, 2h."),
    patience: int = typer.Option(4, help="Without a budget: stop after this many evaluations without improvement."),
    val_frac: float = typer.Option(0.1, help="Fraction held out from the end of each document for validation."),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate every N steps. [default: ~12 times per budget]"),
    seed: int = typer.Option(1337, help="Random seed (weights, data order, dropout)."),
    out: Optional[Path] = typer.Option(None, help="Run directory. [default: checkpoints/<first file's name>]"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last.pt."),
    force: bool = typer.Option(False, help="With --resume: continue even if flags contradict the checkpoint."),
    sample_length: int = typer.Option(200, help="Characters of the sample shown at each evaluation (0: none)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final summary on stderr."),
):
    """Learn a corpus: train a char-level model and write best.pt, last.pt and metrics.jsonl."""
    from .data import read_text
    from .progress import RichReporter
    from .train import TrainConfig
    from .train import train as run_train

    docs = [read_text(p) for p in paths]
    given = {"cell": cell, "layers": layers, "hidden": hidden, "embed": embed, "dropout": dropout}
    model_cfg = {k: v for k, v in given.items() if v is not None}
    if not resume:
        from .model import ModelConfig

        defaults = ModelConfig(vocab_size=1)
        model_cfg = {k: model_cfg.get(k, getattr(defaults, k)) for k in given}
    if "cell" in model_cfg and model_cfg["cell"] not in ("lstm", "gru", "rnn"):
        from .errors import UsageError

        raise UsageError(f"--cell {model_cfg['cell']!r} is not known; use lstm, gru or rnn")
    cfg = TrainConfig(
        seq_len=seq_len, batch_size=batch_size, lr=lr, warmup=warmup, weight_decay=weight_decay, clip=clip,
        epochs=epochs, steps=steps, time_budget=parse_duration(time_budget) if time_budget else None,
        patience=patience, val_frac=val_frac, eval_every=eval_every, seed=seed, device=device,
    )
    out_dir = out or Path("checkpoints") / paths[0].stem
    console = _stderr()
    result = run_train(docs, model_cfg, cfg, out_dir, sources=[str(p) for p in paths], resume=resume, force=force,
                       reporter=RichReporter(console, quiet=quiet), sample_every_eval=sample_length)
    stopped = result.progress.stopped
    if stopped in ("interrupted", "terminated"):
        console.print(f"{stopped}: resume with  charrnn train {' '.join(map(str, paths))} --out {out_dir} --resume")
        raise typer.Exit(130 if stopped == "interrupted" else 143)


@app.command()
@command
def sample(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="A .pt file or run directory. [default: newest run under checkpoints/]"),
    prime: str = typer.Option("", help="Text to start from (echoed first). [default: start of a document]"),
    length: int = typer.Option(500, "--length", "-l", help="New characters per sample (the prime not counted)."),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="Softmax temperature (> 0): lower is safer, higher wilder."),
    greedy: bool = typer.Option(False, help="Always take the most likely character."),
    top_k: Optional[int] = typer.Option(None, help="Draw only among the K likeliest characters."),
    top_p: Optional[float] = typer.Option(None, help="Draw only among the likeliest characters whose mass reaches P."),
    seed: Optional[int] = typer.Option(None, help="Random seed (reported on stderr when not given)."),
    num_samples: int = typer.Option(1, "--num-samples", "-n", help="Samples to generate, as one batch."),
    skip_unknown: bool = typer.Option(False, help="Drop prime characters the model does not know instead of failing."),
    device: str = typer.Option("cpu", help="auto, cpu, cuda or mps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Nothing on stderr but errors."),
):
    """Write new text: stream samples from a trained model to stdout."""
    from .checkpoint import resolve_checkpoint
    from .inference import load_model
    from .sample import SampleConfig, check_prime, generate, resolve_seed
    from .train import pick_device

    cfg = SampleConfig(length=length, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                       num_samples=num_samples, seed=seed)
    cfg.validate()
    dev = pick_device(device)
    path = resolve_checkpoint(checkpoint)
    model, vocab, _ = load_model(path, dev)
    if skip_unknown:
        prime = "".join(c for c in prime if c in vocab)
    check_prime(vocab, prime)
    cfg = SampleConfig(**{**cfg.__dict__, "seed": resolve_seed(seed)})
    if not quiet:
        _stderr().print(f"[dim]sampling from {path}, seed {cfg.seed}[/]")
    write_samples(generate(model, vocab, prime, cfg, dev), prime, cfg.num_samples, sys.stdout)


def write_samples(events, prime: str, n: int, out) -> None:
    """Print samples in order while they are generated as one batch.

    The lowest-numbered unfinished sample streams live; the others wait in buffers for their
    turn. A sample ended by EOS is followed by a newline, one cut at the length limit by a
    blank line (the last sample by a single newline).
    """
    pending: list[list[str]] = [[] for _ in range(n)]
    ended: list[bool | None] = [None] * n  # None: running; True: drew EOS; False: cut at --length
    current = 0

    def advance() -> None:
        nonlocal current
        while current < n and ended[current] is not None:
            out.write("\n" if (ended[current] or current == n - 1) else "\n\n")
            current += 1
            if current < n:
                out.write(prime + "".join(pending[current]))
                pending[current] = []

    out.write(prime)
    last_flush = time.monotonic()
    for i, ch in events:
        if ch is None:
            ended[i] = True
            if i == current:
                advance()
        elif i == current:
            out.write(ch)
        else:
            pending[i].append(ch)
        now = time.monotonic()
        if now - last_flush > 0.02:
            out.flush()
            last_flush = now
    ended = [True if e else False for e in ended]
    advance()
    out.flush()


@app.command("eval")
@command
def eval_cmd(
    files: list[Path] = typer.Argument(..., help="Text files to score.", show_default=False),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="A .pt file or run directory."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
):
    """Score text: nats/char, bits/char and perplexity of the model on each file and overall."""
    import math

    from .checkpoint import resolve_checkpoint
    from .data import EOS, read_text
    from .inference import load_model
    from .train import evaluate, pick_device

    import numpy as np

    dev = pick_device(device)
    model, vocab, _ = load_model(resolve_checkpoint(checkpoint), dev)
    texts = [(str(f), read_text(f)) for f in files]
    total_nll, total_n = 0.0, 0
    print("file\tnats/char\tbpc\tperplexity\tchars")
    for name, text in texts:
        missing = vocab.missing(text)
        if missing:
            from .data import describe_chars
            from .errors import UsageError

            raise UsageError(f"{name}: characters not in the model's vocabulary: {describe_chars(missing)}")
        ids = np.concatenate([[EOS], vocab.encode(text), [EOS]])
        nll, n = evaluate(model, ids, dev)
        total_nll += nll
        total_n += n
        print(f"{name}\t{nll / n:.4f}\t{nll / n / math.log(2):.4f}\t{math.exp(nll / n):.3f}\t{n}", flush=True)
    if len(texts) > 1:
        m = total_nll / total_n
        print(f"(all)\t{m:.4f}\t{m / math.log(2):.4f}\t{math.exp(m):.3f}\t{total_n}")


@app.command()
@command
def info(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="A .pt file or run directory."),
):
    """Describe a checkpoint: config, vocabulary, size, progress and corpus."""
    from .checkpoint import load_checkpoint, resolve_checkpoint
    from .inference import describe

    from rich.console import Console
    from rich.table import Table

    path = resolve_checkpoint(checkpoint)
    rows = describe(load_checkpoint(path))
    table = Table(title=str(path), show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in rows:
        table.add_row(k, v)
    Console(highlight=False).print(table)


def main() -> None:
    app()
