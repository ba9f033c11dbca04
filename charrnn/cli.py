"""The charrnn command line: parse, call the library, print. Torch is imported inside commands so --help is instant."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import typer

from .config import CELLS, ModelConfig, SampleConfig, TrainConfig
from .errors import CharRNNError, UsageError

M = ModelConfig  # class attributes hold the defaults shown in --help
T = TrainConfig

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
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            _stderr().print("interrupted")
            raise typer.Exit(130) from None
        except Exception as e:
            if os.environ.get("CHARRNN_DEBUG"):
                raise
            from rich.markup import escape

            _fail(escape(f"internal error: {type(e).__name__}: {e} (set CHARRNN_DEBUG=1 for a traceback)"), 1)

    return wrapper


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)?")


def parse_duration(text: str) -> float:
    """'90s', '10m', '2h', '1h30m' or plain seconds -> seconds."""
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


def read_inputs(paths: list[Path], encoding: str, errors: str) -> list[tuple[str, str]]:
    """(name, text) of each input; '-' is standard input, named <stdin>, and may appear once."""
    from .data import read_text

    if sum(str(p) == "-" for p in paths) > 1:
        raise UsageError("standard input ('-') can be read only once; give it once")
    return [("<stdin>" if str(p) == "-" else str(p), read_text(p, encoding=encoding, errors=errors)) for p in paths]


def checkpoint_option():
    return typer.Option(None, "--checkpoint", "-c", help="A .pt file or run directory. (default: newest run under checkpoints/)")


def threads_option():
    return typer.Option(None, help="CPU threads for the arithmetic. (default: one per core available to this process)")


def encoding_option():
    return typer.Option("utf-8", help="Text encoding of the input (utf-8, latin-1, cp1252, utf-16, ...).")


def errors_option():
    return typer.Option("strict", help="strict: refuse undecodable bytes; replace: read them as U+FFFD.")


@app.command()
@command
def train(
    paths: list[Path] = typer.Argument(
        ..., help="Text files (UTF-8), '-' for standard input; each is a document, ended by EOS.", show_default=False
    ),
    lines: bool = typer.Option(False, "--lines", help="Every non-empty line is a document (names, titles, log lines)."),
    doc_sep: str | None = typer.Option(
        None, help="Documents are separated by lines holding only SEP ('%' for fortune files; '' for blank lines)."
    ),
    encoding: str = encoding_option(),
    errors: str = errors_option(),
    max_vocab: int = typer.Option(T.max_vocab, help="Refuse corpora with more distinct characters than this."),
    cell: str | None = typer.Option(None, help=f"Recurrent cell: lstm, gru or rnn. (default: {M.cell})", show_default=False),
    layers: int | None = typer.Option(None, help=f"Stacked recurrent layers. (default: {M.layers})", show_default=False),
    hidden: int | None = typer.Option(None, help=f"Hidden units per layer. (default: {M.hidden})", show_default=False),
    embed: int | None = typer.Option(None, help=f"Character embedding size. (default: {M.embed})", show_default=False),
    dropout: float | None = typer.Option(
        None, help=f"Dropout on embeddings, between layers and before the output. (default: {M.dropout})", show_default=False
    ),
    seq_len: int = typer.Option(T.seq_len, help="Truncated-BPTT window: characters per stream per step."),
    batch_size: int = typer.Option(T.batch_size, help="Parallel streams per step."),
    lr: float = typer.Option(T.lr, help="Peak learning rate (AdamW)."),
    warmup: int = typer.Option(T.warmup, help="Steps of linear learning-rate warm-up."),
    weight_decay: float = typer.Option(T.weight_decay, help="AdamW weight decay on matrices."),
    clip: float = typer.Option(T.clip, help="Clip the global gradient norm to this."),
    epochs: float | None = typer.Option(None, help="Stop after this many passes over the data."),
    steps: int | None = typer.Option(None, help="Stop after this many steps."),
    time_budget: str | None = typer.Option(None, "--time", help="Stop after this much time: 90s, 10m, 2h."),
    patience: int = typer.Option(T.patience, help="Without a budget: stop after this many evaluations without improvement."),
    val_frac: float = typer.Option(T.val_frac, help="Fraction held out from the end of each document for validation."),
    eval_every: int | None = typer.Option(None, help="Evaluate every N steps. (default: 12 times per budget, else 250)"),
    eval_chars: int = typer.Option(T.eval_chars, help="Score at most this many validation characters per evaluation."),
    seed: int = typer.Option(T.seed, help="Random seed (weights, data order, dropout)."),
    out: Path | None = typer.Option(None, help="Run directory. (default: checkpoints/<first file's name>)"),
    device: str = typer.Option(T.device, help="auto, cpu, cuda or mps."),
    threads: int | None = threads_option(),
    precision: str = typer.Option(T.precision, help="auto (fp16 autocast on CUDA, fp32 elsewhere), fp32, bf16 or fp16."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the training forward pass (slow start)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last.pt."),
    force: bool = typer.Option(False, help="With --resume: continue even if flags contradict the checkpoint."),
    sample_length: int = typer.Option(200, help="Characters of the sample shown at each evaluation (0: none)."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write loss.png in the run directory at each "
                              "evaluation (when matplotlib is installed)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final summary on stderr."),
):
    """Learn a corpus: train a char-level model and write best.pt, last.pt and metrics.jsonl."""
    from .corpus import TextFiles
    from .data import split_text
    from .distributed import from_env, shutdown
    from .progress import RichReporter
    from .runtime import set_threads
    from .train import Reporter
    from .train import train as run_train

    if lines and doc_sep is not None:
        raise UsageError("--lines and --doc-sep both say how to cut documents; give one of them")
    if lines or doc_sep is not None or any(str(p) == "-" for p in paths):
        inputs = read_inputs(paths, encoding, errors)  # documents are cut in memory
        data = [d for _, text in inputs for d in split_text(text, lines, doc_sep)]
        sources = [name for name, _ in inputs]
    else:  # each file one document, streamed from disk into a token cache in the run directory
        data, sources = TextFiles(tuple(paths), encoding, errors), [str(p) for p in paths]
    given = {"cell": cell, "layers": layers, "hidden": hidden, "embed": embed, "dropout": dropout}
    # Only the flags given: on resume they are checked against the checkpoint; in a new run the
    # rest are defaults, except that --time picks layers and hidden when neither is given.
    model_cfg = {k: v for k, v in given.items() if v is not None}
    if model_cfg.get("cell", "lstm") not in CELLS:
        raise UsageError(f"--cell {model_cfg['cell']!r} is not known; use {', '.join(CELLS)}")
    cfg = TrainConfig(
        seq_len=seq_len, batch_size=batch_size, lr=lr, warmup=warmup, weight_decay=weight_decay, clip=clip,
        epochs=epochs, steps=steps, time_budget=parse_duration(time_budget) if time_budget else None,
        patience=patience, val_frac=val_frac, eval_every=eval_every, seed=seed, device=device,
        whole_documents=lines or doc_sep is not None, max_vocab=max_vocab, precision=precision, compile=compile_model,
        eval_chars=eval_chars if eval_chars > 0 else None,
    )
    set_threads(threads)
    world = from_env(device)  # under torchrun: join the other processes
    out_dir = out or Path("checkpoints") / ("stdin" if str(paths[0]) == "-" else paths[0].stem)
    console = _stderr()
    try:
        result = run_train(data, model_cfg, cfg, out_dir, sources=sources, resume=resume, force=force,
                           reporter=RichReporter(console, quiet=quiet) if world.main else Reporter(),
                           sample_every_eval=sample_length, doc_mode={"lines": lines, "doc_sep": doc_sep}, world=world,
                           plot=plot)
    finally:
        shutdown(world)
    stopped = result.progress.stopped
    if stopped in ("interrupted", "terminated"):
        if not world.main:
            raise typer.Exit(130 if stopped == "interrupted" else 143)
        console.print(f"{stopped}: resume with  charrnn train {' '.join(map(str, paths))} --out {out_dir} --resume")
        raise typer.Exit(130 if stopped == "interrupted" else 143)


@app.command()
@command
def sample(
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", "-c", help="A .pt file or run directory. (default: newest run under checkpoints/)"
    ),
    prime: str = typer.Option(
        "", help="Text to start from (echoed first); '-' reads it from standard input. (default: start of a document)"
    ),
    prime_file: Path | None = typer.Option(None, help="Read the prime from this file (any length, many lines)."),
    length: int = typer.Option(SampleConfig.length, "--length", "-l", help="New characters per sample (the prime not counted)."),
    temperature: float = typer.Option(
        SampleConfig.temperature, "--temperature", "-t", help="Softmax temperature (> 0): lower is safer, higher wilder."
    ),
    greedy: bool = typer.Option(False, help="Always take the most likely character."),
    top_k: int | None = typer.Option(None, help="Draw only among the K likeliest characters."),
    top_p: float | None = typer.Option(None, help="Draw only among the likeliest characters whose mass reaches P."),
    seed: int | None = typer.Option(None, help="Random seed (reported on stderr when not given)."),
    num_samples: int = typer.Option(1, "--num-samples", "-n", help="Samples to generate, as one batch."),
    skip_unknown: bool = typer.Option(False, help="Drop prime characters the model does not know instead of failing."),
    unique: bool = typer.Option(False, help="Drop samples that repeat an earlier one (more are drawn to make up -n)."),
    novel: bool = typer.Option(False, help="Drop samples that are a document of the training corpus (e.g. a known name)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per sample: text, prime, ended, seed."),
    color: bool = typer.Option(False, "--color", help="On a terminal, colour each character by the probability the "
                               "model gave it (green: sure, red: a guess). Ignored when stdout is not a terminal."),
    device: str = typer.Option("cpu", help="auto, cpu, cuda or mps."),
    threads: int | None = threads_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Nothing on stderr but errors."),
):
    """Write new text: stream samples from a trained model to stdout."""
    from .checkpoint import resolve_checkpoint
    from .data import read_text
    from .inference import load_model
    from .runtime import pick_device, set_threads
    from .sample import check_prime, complete_samples, generate, resolve_seed, sample_filter

    set_threads(threads)
    cfg = SampleConfig(length=length, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                       num_samples=num_samples, seed=seed)
    cfg.validate()
    dev = pick_device(device)
    if prime_file is not None and prime:
        raise UsageError("--prime and --prime-file both give a prime; give one of them")
    if prime == "-" or prime_file is not None:
        prime = read_text(prime_file if prime_file is not None else "-")  # UTF-8, CRLF read as LF
    path = resolve_checkpoint(checkpoint)
    model, vocab, ckpt = load_model(path, dev)
    if skip_unknown:
        prime = "".join(c for c in prime if c in vocab)
    check_prime(vocab, prime)
    cfg = replace(cfg, seed=resolve_seed(seed))
    if not quiet:
        _stderr().print(f"[dim]sampling from {path}, seed {cfg.seed}[/]")
    if not (unique or novel or json_out):
        if color and sys.stdout.isatty():
            events = ((i, ch if ch is None else paint(ch, p)) for i, ch, p in generate(model, vocab, prime, cfg, dev, True))
        else:
            events = generate(model, vocab, prime, cfg, dev)
        write_samples(events, prime, cfg.num_samples, sys.stdout)
        return
    hashes = ckpt["corpus"].get("doc_hashes")
    if novel and hashes is None:
        raise UsageError(f"{path}: this checkpoint has no record of its training documents; retrain to use --novel")
    accept = sample_filter(hashes.tolist() if novel else None, unique)
    made = 0
    cut_before = False
    for text, eos in complete_samples(model, vocab, prime, cfg, dev, accept):
        if json_out:
            record = {"index": made, "text": text, "prime": prime, "ended": "eos" if eos else "length", "seed": cfg.seed}
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(("\n" if cut_before else "") + text + "\n")  # a blank line after a sample cut at --length
        sys.stdout.flush()
        cut_before = not eos
        made += 1
    if made < cfg.num_samples and not quiet:
        _stderr().print(f"only {made} of {cfg.num_samples} samples were new; the model mostly repeats its corpus")


def paint(ch: str, p: float) -> str:
    """`ch` in a 24-bit terminal colour from red (p = 0) through yellow to green (p = 1); newlines stay plain."""
    if ch == "\n":
        return ch
    red, green = int(255 * min(1.0, 2 * (1 - p))), int(255 * min(1.0, 2 * p))
    return f"\x1b[38;2;{red};{green};60m{ch}\x1b[0m"


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
    ended = [bool(e) for e in ended]
    advance()
    out.flush()


@app.command("eval")
@command
def eval_cmd(
    files: list[Path] = typer.Argument(..., help="Text files to score; '-' reads standard input.", show_default=False),
    checkpoint: Path | None = checkpoint_option(),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    threads: int | None = threads_option(),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per file, then one for all files."),
    lines: bool | None = typer.Option(None, "--lines/--no-lines", help="Each line is a document. (default: as trained)"),
    doc_sep: str | None = typer.Option(None, help="Documents are separated by lines holding only SEP. (default: as trained)"),
    encoding: str = encoding_option(),
    errors: str = errors_option(),
):
    """Score text: nats/char, bits/char and perplexity of the model on each file and overall."""
    import math

    from .checkpoint import resolve_checkpoint
    from .data import describe_chars, document_stream, split_text
    from .inference import load_model
    from .runtime import pick_device, set_threads
    from .train import evaluate

    set_threads(threads)
    dev = pick_device(device)
    model, vocab, ckpt = load_model(resolve_checkpoint(checkpoint), dev)
    if lines is None and doc_sep is None:  # cut text into documents as the training corpus was
        lines, doc_sep = bool(ckpt["corpus"].get("lines")), ckpt["corpus"].get("doc_sep")
    texts = read_inputs(files, encoding, errors)
    encoded = []
    for name, text in texts:  # check every file before printing anything
        docs = split_text(text, bool(lines), doc_sep)
        missing = [c for d in docs for c in vocab.missing(d)]
        if missing:
            raise UsageError(
                f"{name}: has characters the model never saw: {describe_chars(list(dict.fromkeys(missing)))}; "
                "it can only score text made of its vocabulary"
            )
        encoded.append((name, document_stream(docs, vocab)))  # as in training: EOS d1 EOS d2 ... EOS
    def report(name: str, nll: float, n: int) -> None:
        m = nll / n
        if json_out:
            print(json.dumps({"file": name, "nats_per_char": round(m, 6), "bpc": round(m / math.log(2), 6),
                              "perplexity": round(math.exp(m), 6), "scored": n}), flush=True)
        else:
            print(f"{name}\t{m:.4f}\t{m / math.log(2):.4f}\t{math.exp(m):.3f}\t{n}", flush=True)

    total_nll, total_n = 0.0, 0
    if not json_out:
        print("file\tnats/char\tbpc\tperplexity\tscored")
    for name, ids in encoded:
        nll, n = evaluate(model, ids, dev)
        total_nll += nll
        total_n += n
        report(name, nll, n)
    if len(texts) > 1:
        report("(all)", total_nll, total_n)


@app.command()
@command
def score(
    source: Path = typer.Argument(Path("-"), help="Text to score, one document per line; '-' (default) reads stdin."),
    checkpoint: Path | None = checkpoint_option(),
    doc_sep: str | None = typer.Option(None, help="Score documents separated by lines holding only SEP ('' for blank lines)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per document."),
    encoding: str = encoding_option(),
    errors: str = errors_option(),
    device: str = typer.Option("cpu", help="auto, cpu, cuda or mps."),
    threads: int | None = threads_option(),
):
    """Score each line (or document) by how typical it is: bits per character, EOS included. Sort with sort -g."""
    import math

    from .checkpoint import resolve_checkpoint
    from .data import read_text, split_text
    from .inference import load_model, score_documents
    from .runtime import pick_device, set_threads

    set_threads(threads)
    dev = pick_device(device)
    model, vocab, _ = load_model(resolve_checkpoint(checkpoint), dev)
    docs = split_text(read_text(source, encoding=encoding, errors=errors), lines=doc_sep is None, doc_sep=doc_sep)
    for doc, logp in zip(docs, score_documents(model, vocab, docs, dev), strict=True):
        n = len(doc) + 1  # the characters and the closing EOS
        bpc = -logp / n / math.log(2) if logp is not None else math.inf
        if json_out:
            record = {"text": doc, "bpc": None if logp is None else round(bpc, 5),
                      "logprob": None if logp is None else round(logp, 5), "predictions": n}
            if logp is None:
                record["unknown"] = vocab.missing(doc)
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(f"{bpc:.4f}\t{doc}")


@app.command()
@command
def inspect(
    source: Path = typer.Argument(Path("-"), help="A short text to look at; '-' (default) reads standard input."),
    checkpoint: Path | None = checkpoint_option(),
    neuron: int | None = typer.Option(None, help="Show hidden unit K's activation at each character instead."),
    layer: int = typer.Option(0, help="The layer of --neuron (0 is the first)."),
    find: str | None = typer.Option(None, help="Rank hidden units by correlation with a feature: quote, newline or indent."),
    html_out: Path | None = typer.Option(None, "--html", help="Also write the view as a self-contained HTML page."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per prediction."),
    encoding: str = encoding_option(),
    errors: str = errors_option(),
):
    """Look inside: per character the top-5 predictions and the surprisal; or what a hidden unit tracks."""
    from .checkpoint import resolve_checkpoint
    from .data import EOS, describe_chars, read_text
    from .inference import load_model
    from .inspection import FEATURES, inspect_text, rank_units, to_html

    path = resolve_checkpoint(checkpoint)
    model, vocab, _ = load_model(path)
    text = read_text(source, encoding=encoding, errors=errors)
    missing = vocab.missing(text)
    if missing:
        raise UsageError(f"the text has characters the model never saw: {describe_chars(missing)}; remove them")
    if find is not None and find not in FEATURES:
        raise UsageError(f"--find {find!r} is not known; use {', '.join(FEATURES)}")
    cfg = model.config
    if neuron is not None and not (0 <= layer < cfg.layers and 0 <= neuron < cfg.hidden):
        raise UsageError(f"--layer {layer} --neuron {neuron}: the model has {cfg.layers} layer(s) of {cfg.hidden} units "
                         f"(0-{cfg.layers - 1}, 0-{cfg.hidden - 1})")
    ins = inspect_text(model, vocab, text)
    if html_out is not None:
        page = to_html(ins, text, f"charrnn inspect: {source}", None if neuron is None else (layer, neuron))
        try:
            html_out.write_text(page, encoding="utf-8")
        except OSError as e:
            raise CharRNNError(f"cannot write {html_out}: {e.strerror}") from None

    def show(c: str) -> str:
        return {"\n": "⏎", "\t": "⇥"}.get(c, c)

    if find is not None:
        print("layer\tunit\tr")
        for lay, unit, r in rank_units(ins, text, find):
            print(f"{lay}\t{unit}\t{r:+.3f}")
        return
    if neuron is not None:
        acts = ins.hidden[1 : len(text) + 1, layer, neuron]
        if sys.stdout.isatty() and not json_out:
            from rich.console import Console
            from rich.text import Text

            out = Text()
            for c, a in zip(text, acts, strict=True):
                shade = int(abs(float(a)) * 255)
                out.append(c, style=f"on rgb({0 if a >= 0 else shade},{shade // 3},{shade if a >= 0 else 0})")
            Console(highlight=False).print(out)
        else:
            for c, a in zip(text, acts, strict=True):
                print(json.dumps({"char": c, "activation": round(float(a), 5)}, ensure_ascii=False) if json_out
                      else f"{show(c)}\t{a:+.4f}")
        return
    bits = ins.surprisal_bits()
    if not json_out:
        print("pos\tchar\tp\tbits\ttop5")
    for t, target in enumerate(ins.target):  # the last prediction is the document's end, shown as <eos>
        c = vocab.token(int(target))
        top = ins.top(t)
        p = float(ins.probs[t, target])
        if json_out:
            print(json.dumps({"pos": t, "char": None if target == EOS else c, "p": round(p, 6), "bits": round(float(bits[t]), 4),
                              "top": [[tok, round(q, 6)] for tok, q in top]}, ensure_ascii=False))
        else:
            print(f"{t}\t{show(c)}\t{p:.4f}\t{bits[t]:.2f}\t" + " ".join(f"{show(tok)}:{q:.3f}" for tok, q in top))
    _stderr().print(f"[dim]{ins.nats_per_char():.4f} nats/char = {ins.nats_per_char() / math.log(2):.4f} bpc "
                    f"over {len(ins.target)} predictions[/]")


@app.command()
@command
def plot(
    runs: list[Path] = typer.Argument(None, help="Run directories (or .pt files in them). (default: the newest run)"),
    output: Path = typer.Option(Path("loss.png"), "--output", "-o", help="The PNG to write."),
):
    """Plot training and validation bpc against characters seen and time, one line per run."""
    from .checkpoint import resolve_checkpoint
    from .plot import load_run, terminal_chart, write_png

    loaded = [load_run(p) for p in (runs or [resolve_checkpoint(None)])]
    if sys.stdout.isatty():
        from rich.console import Console

        Console(highlight=False).print(terminal_chart(loaded), end="")
    write_png(loaded, output)
    _stderr().print(f"[dim]wrote {output}[/]")


@app.command()
@command
def info(
    checkpoint: Path | None = checkpoint_option(),
):
    """Describe a checkpoint: config, vocabulary, size, progress and corpus."""
    from rich.console import Console
    from rich.table import Table

    from .checkpoint import load_checkpoint, resolve_checkpoint
    from .inference import describe

    path = resolve_checkpoint(checkpoint)
    rows = describe(load_checkpoint(path))
    table = Table(title=str(path), show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in rows:
        table.add_row(k, v)
    Console(highlight=False).print(table)


def main() -> None:
    try:
        app()
    finally:
        # All files are complete by now: a late Ctrl-C (say, the second of two) must not end in a
        # traceback from the interpreter's shutdown.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
