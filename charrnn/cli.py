"""The charrnn command line: each command parses, calls the library, and hands the result to render.py.

Options are declared in options.py (shared ones) or derived from the config dataclasses' fields.
Torch is imported inside commands so --help is instant.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path

import typer

from . import options as opt
from .config import DocumentConfig, DynamicConfig, ModelConfig, SampleConfig, ServeConfig, TrainConfig
from .errors import command
from .export.command import export

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Train a character-level LSTM on any text, then generate text like it.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    # Plain help: rich's panels cost more start-up than the rest of --help; errors are one line (errors.command).
    rich_markup_mode=None, pretty_exceptions_enable=False,
)


@app.command()
@command
@opt.from_config(ModelConfig, into="given", given_only=True)
@opt.from_config(TrainConfig, into="cfg")
@opt.from_config(DocumentConfig, into="docs")
def train(
    paths: list[Path] = typer.Argument(..., show_default=False,
                                       help="Text files (UTF-8), '-' for standard input; each is a document, ended by EOS."),
    encoding: str = opt.encoding_option(),
    errors: str = opt.errors_option(),
    out: Path | None = typer.Option(None, help="Run directory. (default: checkpoints/<first file's name>)"),
    threads: int | None = opt.threads_option(),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last.pt."),
    force: bool = typer.Option(False, help="With --resume: continue even if flags contradict the checkpoint."),
    init: str | None = typer.Option(None, "--init", help="Fine-tune: start from this trained model (a .pt file, a run "
                                    "directory, or 'base' for the bundled one), its shape kept, new characters added; "
                                    "optimizer, schedule and seed are new."),
    sample_length: int = typer.Option(200, help="Characters of the sample shown at each evaluation (0: none)."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write loss.png in the run directory at each "
                              "evaluation (when matplotlib is installed)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write the curves and samples as TensorBoard "
                                     "event files into the run directory's tb/ (needs the tensorboard package; view "
                                     "with tensorboard --logdir checkpoints/)."),
    quiet: bool = opt.quiet_option("Only the final summary on stderr."),
    cfg: TrainConfig = None,
    given: dict = None,
    docs: DocumentConfig = None,
):
    """Learn a corpus: train a model on it. Writes best.pt, last.pt and metrics.jsonl into the run directory."""
    from .corpus import documents_or_files
    from .distributed import from_env, shutdown
    from .progress import terminal_reporter
    from .render import stderr_console
    from .run_state import Reporter
    from .runtime import set_threads
    from .train import train as run_train

    reporter = terminal_reporter(quiet, tensorboard)  # every rank: a missing tensorboard is refused before reading
    data, sources = documents_or_files(paths, docs, encoding, errors)
    # Only the model flags given: on resume they are checked against the checkpoint; in a new run
    # the rest are defaults, except that --time picks layers and hidden when neither is given.
    cfg = replace(cfg, whole_documents=docs.whole_documents)
    set_threads(threads)
    world = from_env(cfg.device)  # under torchrun: join the other processes
    out_dir = out or Path("checkpoints") / ("stdin" if str(paths[0]) == "-" else paths[0].stem)
    finished = False
    try:
        result = run_train(data, given, cfg, out_dir, sources=sources, resume=resume, force=force,
                           reporter=reporter if world.main else Reporter(),
                           sample_every_eval=sample_length, doc_mode={"lines": docs.lines, "doc_sep": docs.doc_sep}, world=world,
                           plot=plot, init=init)
        finished = True
    finally:
        shutdown(world, finished)
    stopped = result.progress.stopped
    if stopped in ("interrupted", "terminated"):
        if world.main:
            stderr_console().print(f"{stopped}: resume with  charrnn train {' '.join(map(str, paths))} --out {out_dir} --resume")
        raise typer.Exit(130 if stopped == "interrupted" else 143)


@app.command()
@command
@opt.from_config(DynamicConfig, into="dyn")
@opt.from_config(SampleConfig, into="cfg")
def sample(
    checkpoint: Path | None = opt.checkpoint_option(),
    prime: str = typer.Option("", help="Text to start from (echoed first); '-' reads it from standard input. "
                              "(default: start of a document)"),
    prime_file: Path | None = typer.Option(None, help="Read the prime from this file (any length, many lines)."),
    skip_unknown: bool = typer.Option(False, help="Drop prime characters the model does not know instead of failing."),
    unique: bool = typer.Option(False, help="Drop samples that repeat an earlier one (more are drawn to make up -n)."),
    novel: bool = typer.Option(False, help="Drop samples that are a document of the training corpus (e.g. a known name)."),
    json_out: bool = opt.json_option("One JSON object per sample: text, prime, ended (eos, stop or length), seed."),
    color: bool = typer.Option(False, "--color", help="On a terminal, colour each character by the probability the "
                               "model gave it (green: sure, red: a guess). Ignored when stdout is not a terminal."),
    device: str = opt.device_option("cpu"),
    threads: int | None = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
    adapt: bool = typer.Option(False, "--adapt", help="First let the model learn from the prime (dynamic evaluation "
                               "over a long --prime-file), so the samples follow its style. The checkpoint is unchanged."),
    cfg: SampleConfig = None,
    dyn: DynamicConfig = None,
):
    """Write new text: stream samples from a trained model to stdout."""
    from . import render
    from .beam import beam_search, check_beam_flags
    from .dynamic import adapted_to_prime
    from .inference import open_model
    from .sample import check_prime, complete_samples, generate, read_prime, resolve_seed, sample_filter

    cfg.validate()
    check_beam_flags(cfg, novel=novel, color=color)
    prime = read_prime(prime, prime_file)
    path, model, vocab, ckpt = open_model(checkpoint, device, threads, quiet)
    prime = check_prime(vocab, prime, skip_unknown, label=cfg.label)
    cfg = replace(cfg, seed=resolve_seed(cfg.seed))
    if adapt:
        model = adapted_to_prime(model, vocab, prime, dyn, cfg.label)
    if cfg.beam:
        render.note(f"beam search with {cfg.beam} beam(s) from {path}", quiet)
        return render.write_beams(beam_search(model, vocab, prime, cfg, model.device), prime, cfg.beam, json_out, sys.stdout)
    render.note(f"sampling from {path}, seed {cfg.seed}", quiet)
    if not (unique or novel or json_out):
        colour = color and sys.stdout.isatty()
        events = generate(model, vocab, prime, cfg, model.device, with_prob=colour)
        render.write_samples(render.painted(events) if colour else events, prime, cfg.num_samples, sys.stdout)
        return
    accept = sample_filter(ckpt, path, novel, unique)  # whole samples, kept or dropped
    made = render.write_whole_samples(complete_samples(model, vocab, prime, cfg, model.device, accept), prime, cfg.seed, json_out,
                                      sys.stdout)
    render.note(f"only {made} of {cfg.num_samples} samples were new; the model mostly repeats its corpus",
                quiet or made == cfg.num_samples)


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
    from .data import read_inputs
    from .dynamic import check
    from .evaluation import evaluate_files, files_as_streams
    from .inference import open_model

    if dynamic:
        check(dyn)  # before anything is printed
    _, model, vocab, ckpt = open_model(checkpoint, device, threads)
    if lines is None and doc_sep is None:  # cut text into documents as the training corpus was
        lines, doc_sep = bool(ckpt["corpus"].get("lines")), ckpt["corpus"].get("doc_sep")
    streams = files_as_streams(read_inputs(files, encoding, errors), vocab, bool(lines), doc_sep, label)
    render.eval_header(json_out, dynamic)
    for name, loss, dyn_loss in evaluate_files(model, streams, dyn if dynamic else None, vocab.text_size):
        render.eval_row(name, loss, json_out, dyn_loss)


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
    from . import render
    from .evaluation import document_scores
    from .inference import open_model

    _, model, vocab, _ = open_model(checkpoint, device, threads)
    for doc, loss, kind, dyn_loss in document_scores(model, vocab, source, doc_sep, encoding, errors, label,
                                                     dyn if dynamic else None):
        render.score_row(doc, loss, vocab.missing(doc) if loss is None else [], json_out, dyn_loss, dynamic, kind,
                         labelled=bool(vocab.labels) and label is None)


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
    from . import render
    from .data import read_text
    from .inference import open_model
    from .inspection import check_request, inspect_text, rank_units, write_html

    _, model, vocab, _ = open_model(checkpoint)
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
    from .checkpoint import resolve_checkpoint
    from .plot import load_run, write_png
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
    from .inference import open_model
    from .serve.server import Service, check_installed, run_server

    cfg.validate()
    check_installed()
    run_server(Service(*open_model(checkpoint, device, threads, quiet), cfg), quiet)


@app.command()
@command
def info(checkpoint: Path | None = opt.checkpoint_option()):
    """Describe a checkpoint. Its config, vocabulary, size, progress and corpus."""
    from .checkpoint import load_checkpoint, resolve_checkpoint
    from .inference import describe
    from .render import info_table

    path = resolve_checkpoint(checkpoint)
    info_table(path, describe(load_checkpoint(path)))


app.command()(command(export))  # its home is the export subpackage


def main() -> None:
    try:
        app()
    finally:  # all files are whole by now: a late Ctrl-C must not end in a traceback from the interpreter's shutdown
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)

