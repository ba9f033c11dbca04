"""How results look: every line the commands print, to stdout (the product) or stderr (for people).

Commands compute, then hand their results here. Streams are flushed as they are written, so
output appears as it is made.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..console import stderr_console

if TYPE_CHECKING:
    from ..api import FileScore, Sample, Score, TextStream


def note(text: str, quiet: bool = False) -> None:
    """A line for people on stderr, dimmed; nothing when quiet."""
    if not quiet:
        stderr_console().print(f"[dim]{escape_markup(text)}[/]")


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def show_char(c: str) -> str:
    """Newline and tab made visible in one column."""
    return {"\n": "⏎", "\t": "⇥"}.get(c, c)


# -- sample -------------------------------------------------------------------------------------

def paint(ch: str, p: float) -> str:
    """`ch` in a 24-bit terminal colour from red (p = 0) through yellow to green (p = 1); newlines stay plain."""
    if ch == "\n":
        return ch
    red, green = int(255 * min(1.0, 2 * (1 - p))), int(255 * min(1.0, 2 * p))
    return f"\x1b[38;2;{red};{green};60m{ch}\x1b[0m"


def write_streams(streams: list[TextStream], out, colour: bool = False) -> None:
    """Print samples in order as they are written (api.Model.streams: one batch; the first unfinished one is live, the
    others wait in their buffers). Each starts with its prime; one ended by EOS or a stop string is followed by a newline,
    one cut at the length limit by a blank line (the last sample by a single newline). colour: each character painted
    by its probability (the streams made with probs)."""
    last_flush = time.monotonic()
    for k, stream in enumerate(streams):
        out.write(stream.prime)
        for ch, p in stream.pieces():
            out.write(paint(ch, p) if colour and p is not None else ch)
            now = time.monotonic()
            if now - last_flush > 0.02:
                out.flush()
                last_flush = now
        out.write("\n" if stream.ended != "length" or k == len(streams) - 1 else "\n\n")
    out.flush()


def write_whole_samples(samples: Iterable[Sample], as_json: bool, out) -> int:
    """Print whole samples (api.Sample) as they are accepted: plain (prime and text) or one JSON object each;
    returns how many."""
    made = 0
    cut_before = False
    for s in samples:
        if as_json:
            record = {"index": made, "text": s.prime + s.text, "prime": s.prime, "ended": s.ended, "seed": s.seed,
                      **({"label": s.label} if s.label is not None else {})}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            out.write(("\n" if cut_before else "") + s.prime + s.text + "\n")  # a blank line after one cut at --length
        out.flush()
        cut_before = s.ended == "length"
        made += 1
    return made


def write_beams(found: list[Sample], beam: int, as_json: bool, out) -> None:
    """Print beam search's continuations (api.Sample with logprob), likeliest first: as samples are, or one JSON object
    each with its log-probability (nats)."""
    if not as_json:  # as samples print
        write_whole_samples(found, False, out)
        return
    for index, s in enumerate(found):
        record = {"index": index, "text": s.prime + s.text, "prime": s.prime, "ended": s.ended,
                  "logprob": round(s.logprob or 0.0, 6), "beam": beam, **({"label": s.label} if s.label is not None else {})}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


# -- eval and score -----------------------------------------------------------------------------

def eval_header(as_json: bool, dynamic: bool = False) -> None:
    if not as_json:
        print("file\tnats/char\tbpc\tperplexity\tscored" + ("\tdynamic nats/char\tdynamic bpc" if dynamic else ""))


def eval_row(score: FileScore, as_json: bool) -> None:
    """One file's static loss (the headline) and, with --dynamic, its dynamic-evaluation loss beside it."""
    if as_json:
        print(json.dumps(score.record()), flush=True)
    else:
        extra = f"\t{score.dynamic_nats:.4f}\t{score.dynamic_bpc:.4f}" if score.dynamic_nats is not None else ""
        print(f"{score.name}\t{score.nats:.4f}\t{score.bpc:.4f}\t{score.perplexity:.3f}\t{score.scored}{extra}", flush=True)


def score_row(score: Score, as_json: bool, show_dynamic: bool = False, labelled: bool = False) -> None:
    """One document's score: bpc (inf for a document with unknown characters), with --dynamic the dynamic-evaluation
    bpc beside it, with `labelled` its likeliest label ('?' when unreadable), and the text."""
    if as_json:
        record = score.record()
        if show_dynamic:
            record["dynamic_bpc"] = None if score.dynamic_bpc is None else round(score.dynamic_bpc, 5)
        print(json.dumps(record, ensure_ascii=False))
    else:
        inf = float("inf")
        extra = f"{score.dynamic_bpc if score.dynamic_bpc is not None else inf:.4f}\t" if show_dynamic else ""
        extra += f"{score.label or '?'}\t" if labelled else ""
        print(f"{score.bpc:.4f}\t{extra}{score.text}")


# -- inspect ------------------------------------------------------------------------------------

def inspect_units(rows: list[tuple[int, int, float]]) -> None:
    print("layer\tunit\tr")
    for lay, unit, r in rows:
        print(f"{lay}\t{unit}\t{r:+.3f}")


def inspect_neuron(text: str, acts, as_json: bool) -> None:
    """A unit's activation per character: shaded on a terminal, else one line per character."""
    if sys.stdout.isatty() and not as_json:
        from rich.console import Console
        from rich.text import Text

        out = Text()
        for c, a in zip(text, acts, strict=True):
            shade = int(abs(float(a)) * 255)
            out.append(c, style=f"on rgb({0 if a >= 0 else shade},{shade // 3},{shade if a >= 0 else 0})")
        Console(highlight=False).print(out)
        return
    for c, a in zip(text, acts, strict=True):
        print(json.dumps({"char": c, "activation": round(float(a), 5)}, ensure_ascii=False) if as_json
              else f"{show_char(c)}\t{a:+.4f}")


def inspect_predictions(ins, as_json: bool) -> None:
    """Per prediction: position, the actual next character, its probability and surprisal, the top 5."""
    from ..text.data import EOS

    bits = ins.surprisal_bits()
    if not as_json:
        print("pos\tchar\tp\tbits\ttop5")
    for t, target in enumerate(ins.target):  # the last prediction is the document's end, shown as <eos>
        c = ins.vocab.token(int(target))
        top = ins.top(t)
        p = float(ins.probs[t, target])
        if as_json:
            print(json.dumps({"pos": t, "char": None if target == EOS else c, "p": round(p, 6), "bits": round(float(bits[t]), 4),
                              "top": [[tok, round(q, 6)] for tok, q in top]}, ensure_ascii=False))
        else:
            print(f"{t}\t{show_char(c)}\t{p:.4f}\t{bits[t]:.2f}\t" + " ".join(f"{show_char(tok)}:{q:.3f}" for tok, q in top))
    loss = ins.loss()
    stderr_console().print(f"[dim]{loss.nats:.4f} nats/char = {loss.bpc:.4f} bpc over {loss.count} predictions[/]")


# -- info and plot ------------------------------------------------------------------------------

def info_table(path: Path, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(path), show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in rows:
        table.add_row(k, v)
    Console(highlight=False).print(table)


def chart_on_terminal(runs) -> None:
    """The terminal chart of the runs' validation curves, when stdout is a terminal."""
    if sys.stdout.isatty():
        from rich.console import Console

        from ..training.plot import terminal_chart

        Console(highlight=False).print(terminal_chart(runs), end="")
