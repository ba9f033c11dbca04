"""The charrnn command line: each command parses, calls the Python API (charrnn.load, charrnn.train: api/), and hands
the result to render.py.

Options come from the settings' one declaration (settings.setting, options.from_config), the same declaration that
makes the API's keywords, so a command hands what it parsed to the API as keywords (settings.keywords_of). Torch is
imported inside commands so --help is instant.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from ..model.config import ModelConfig
from ..scoring.config import DynamicConfig
from ..serve.config import ServeConfig
from ..settings import keywords_of
from ..text.config import DocumentConfig
from ..training.config import RunOptions, TrainConfig
from ..writing.config import SampleConfig, SampleExtras
from . import options as opt
from .export import export
from .failures import command
from .loading import open_model

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Train a character-level LSTM on any text, then generate text like it.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    # Plain help: rich's panels cost more start-up than the rest of --help; errors are one line (failures.command).
    rich_markup_mode=None, pretty_exceptions_enable=False,
)


@app.command()
@command
@opt.from_config(ModelConfig, into="given", given_only=True)
@opt.from_config(TrainConfig, into="cfg")
@opt.from_config(DocumentConfig, into="docs")
@opt.from_config(RunOptions, into="run")
def train(
    paths: list[Path] = typer.Argument(..., show_default=False,
                                       help="Text files (UTF-8), '-' for standard input; each is a document, ended by EOS."),
    run: RunOptions = None,
    cfg: TrainConfig = None,
    given: dict = None,
    docs: DocumentConfig = None,
):
    """Learn a corpus: train a model on it. Writes best.pt, last.pt and metrics.jsonl into the run directory."""
    from ..api.training import train as train_model
    from ..console import stderr_console

    # Only the model flags given: on resume they are checked against the checkpoint; in a new run the rest are
    # defaults, except that --time picks layers and hidden when neither is given.
    result = train_model(paths, **given, **keywords_of(cfg, docs, run))
    if result.ended in ("interrupted", "terminated"):
        if result.rank == 0:
            stderr_console().print(f"{result.ended}: resume with  charrnn train {' '.join(map(str, paths))} "
                                   f"--out {result.out} --resume")
        raise typer.Exit(130 if result.ended == "interrupted" else 143)


@app.command()
@command
@opt.from_config(SampleExtras, into="extras")
@opt.from_config(DynamicConfig, into="dyn")
@opt.from_config(SampleConfig, into="cfg")
def sample(
    checkpoint: Path | None = opt.checkpoint_option(),
    prime: str = typer.Option("", help="Text to start from (echoed first); '-' reads it from standard input. "
                              "(default: start of a document)"),
    prime_file: Path | None = typer.Option(None, help="Read the prime from this file (any length, many lines)."),
    json_out: bool = opt.json_option("One JSON object per sample: text, prime, ended (eos, stop or length), seed."),
    color: bool = typer.Option(False, "--color", help="On a terminal, colour each character by the probability the "
                               "model gave it (green: sure, red: a guess). Ignored when stdout is not a terminal."),
    device: str = opt.device_option("cpu"),
    threads: int | None = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
    cfg: SampleConfig = None,
    dyn: DynamicConfig = None,
    extras: SampleExtras = None,
):
    """Write new text: stream samples from a trained model to stdout."""
    from ..writing.beam import check_beam_flags
    from ..writing.sample import read_prime, resolve_seed
    from . import render

    cfg.validate()
    check_beam_flags(cfg.beam, novel=extras.novel, color=color)
    prime = read_prime(prime, prime_file)
    model = open_model(checkpoint, device, threads, quiet)
    options = keywords_of(cfg, dyn, extras) | {"seed": resolve_seed(cfg.seed)}  # chosen here, so it can be reported
    n = options.pop("num_samples")
    if cfg.beam:
        render.note(f"beam search with {cfg.beam} beam(s) from {model.path}", quiet)
        return render.write_beams(model.samples(prime, n=n, **options), cfg.beam, json_out, sys.stdout)
    if not (extras.unique or extras.novel or json_out):
        colour = color and sys.stdout.isatty()
        streams = model.streams(prime, n=n, probs=colour, **_without(options, "unique", "novel"))
        render.note(f"sampling from {model.path}, seed {options['seed']}", quiet)
        return render.write_streams(streams, sys.stdout, colour)
    samples = model.iter_samples(prime, n=n, **options)
    render.note(f"sampling from {model.path}, seed {options['seed']}", quiet)
    made = render.write_whole_samples(samples, json_out, sys.stdout)
    render.note(f"only {made} of {n} samples were new; the model mostly repeats its corpus", quiet or made == n)


def _without(options: dict, *names: str) -> dict:
    return {k: v for k, v in options.items() if k not in names}


@app.command("eval")
@command
@opt.from_config(DynamicConfig, into="dyn")
def eval_cmd(
    files: list[Path] = typer.Argument(..., help="Text files to score; '-' reads standard input.", show_default=False),
    checkpoint: Path | None = opt.checkpoint_option(),
    device: str = opt.device_option("auto"),
    threads: int | None = opt.threads_option(),
    json_out: bool = opt.json_option("One JSON object per file, then one for all files."),
    lines: bool | None = typer.Option(None, "--lines/--no-lines", help="Each line is a document. (default: as trained)"),
    doc_sep: str | None = typer.Option(None, help="Documents are separated by lines holding only SEP. (default: as trained)"),
    encoding: str = opt.encoding_option(),
    errors: str = opt.errors_option(),
    dynamic: bool = opt.dynamic_option(),
    label: str | None = opt.label_option(),
    dyn: DynamicConfig = None,
):
    """Score text files: nats/char, bits/char and perplexity. Each file, then all of them together."""
    from . import render

    model = open_model(checkpoint, device, threads)
    scores = model.evaluate(files, dynamic=dynamic, lines=lines, doc_sep=doc_sep, label=label, encoding=encoding,
                            errors=errors, **keywords_of(dyn))
    render.eval_header(json_out, dynamic)
    for score in scores:
        render.eval_row(score, json_out)


@app.command()
@command
@opt.from_config(DynamicConfig, into="dyn")
def score(
    source: Path = typer.Argument(Path("-"), help="Text to score, one document per line; '-' (default) reads stdin."),
    checkpoint: Path | None = opt.checkpoint_option(),
    doc_sep: str | None = typer.Option(None, help="Score documents separated by lines holding only SEP ('' for blank lines)."),
    json_out: bool = opt.json_option("One JSON object per document."),
    encoding: str = opt.encoding_option(),
    errors: str = opt.errors_option(),
    device: str = opt.device_option("cpu"),
    threads: int | None = opt.threads_option(),
    dynamic: bool = opt.dynamic_option(" Documents are read in order; each adapts the model for the next."),
    label: str | None = opt.label_option(),
    dyn: DynamicConfig = None,
):
    """Rank lines (or documents) by how typical they are. Bits per character, EOS included; sort with sort -g.
    A labelled model without --label scores each whatever its kind and names the likeliest kind beside it."""
    from ..text.data import read_text, split_text
    from . import render

    model = open_model(checkpoint, device, threads)
    docs = split_text(read_text(source, encoding=encoding, errors=errors), lines=doc_sep is None, doc_sep=doc_sep)
    for scored in model.scores(docs, label=label, dynamic=dynamic, **keywords_of(dyn)):
        render.score_row(scored, json_out, dynamic, labelled=bool(model.labels) and label is None)


@app.command()
@command
def inspect(
    source: Path = typer.Argument(Path("-"), help="A short text to look at; '-' (default) reads standard input."),
    checkpoint: Path | None = opt.checkpoint_option(),
    neuron: int | None = typer.Option(None, help="Show hidden unit K's activation at each character instead."),
    layer: int = typer.Option(0, help="The layer of --neuron (0 is the first)."),
    find: str | None = typer.Option(None, help="Rank hidden units by correlation with a feature: quote, newline or indent."),
    html_out: Path | None = typer.Option(None, "--html", help="Also write the view as a self-contained HTML page."),
    json_out: bool = opt.json_option("One JSON object per prediction."),
    encoding: str = opt.encoding_option(),
    errors: str = opt.errors_option(),
    label: str | None = opt.label_option(),
):
    """Look inside: predictions, surprisal, hidden units. Per character the top-5 predictions and surprisal, or one unit."""
    from ..scoring.inspection import check_request, inspect_text, rank_units, write_html
    from ..text.data import read_text
    from . import render

    loaded = open_model(checkpoint)
    model, vocab = loaded.network, loaded.codec
    text = read_text(source, encoding=encoding, errors=errors)
    check_request(model, vocab, text, find, neuron, layer)
    ins = inspect_text(model, vocab, text, label=label)
    if html_out is not None:
        write_html(html_out, ins, text, f"charrnn inspect: {source}", None if neuron is None else (layer, neuron))
    if find is not None:
        render.inspect_units(rank_units(ins, text, find))
    elif neuron is not None:
        render.inspect_neuron(text, ins.hidden[1 : len(text) + 1, layer, neuron], json_out)
    else:
        render.inspect_predictions(ins, json_out)


@app.command()
@command
def plot(
    runs: list[Path] = typer.Argument(None, help="Run directories (or .pt files in them). (default: the newest run)"),
    output: Path = typer.Option(Path("loss.png"), "--output", "-o", help="The PNG to write."),
):
    """Plot runs' loss curves. Training and validation bpc against characters seen and time, one line per run."""
    from ..model.checkpoint import resolve_checkpoint
    from ..training.plot import load_run, write_png
    from .render import chart_on_terminal, note

    loaded = [load_run(p) for p in (runs or [resolve_checkpoint(None)])]
    chart_on_terminal(loaded)
    write_png(loaded, output)
    note(f"wrote {output}")


@app.command()
@command
@opt.from_config(ServeConfig, into="cfg")
def serve(
    checkpoint: Path | None = opt.checkpoint_option(),
    device: str = opt.device_option("cpu"),
    threads: int | None = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
    cfg: ServeConfig = None,
):
    """Serve the model over HTTP: a co-writing page and a JSON API. The page at /; /v1/sample, /v1/score, /v1/info."""
    from ..serve.server import Service, check_installed, run_server

    cfg.validate()
    check_installed()
    run_server(Service(open_model(checkpoint, device, threads, quiet), cfg), quiet)


@app.command()
@command
def info(checkpoint: Path | None = opt.checkpoint_option()):
    """Describe a checkpoint. Its config, vocabulary, size, progress and corpus."""
    from ..api.model import load
    from ..model.checkpoint import resolve_checkpoint
    from .render import info_table

    path = resolve_checkpoint(checkpoint)
    info_table(path, list(load(path, device="cpu").info.items()))


app.command()(command(export))


def main() -> None:
    try:
        app()
    finally:  # all files are whole by now: a late Ctrl-C must not end in a traceback from the interpreter's shutdown
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
