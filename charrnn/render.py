"""How results look: every line the commands print, to stdout (the product) or stderr (for people).

Commands compute, then hand their results here. Streams are flushed as they are written, so
output appears as it is made.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .metrics import Loss


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


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


def painted(events: Iterator[tuple]) -> Iterator[tuple]:
    """(index, char, p) events -> (index, coloured char) events (EOS stays None)."""
    return ((i, ch if ch is None else paint(ch, p)) for i, ch, p in events)


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


def write_whole_samples(samples: Iterable[tuple[str, str, str | None]], prime: str, seed: int, as_json: bool, out) -> int:
    """Print whole samples (text, why it ended: eos, stop or length, its label or None) as they are accepted: plain
    or one JSON object each; returns how many."""
    made = 0
    cut_before = False
    for text, ended, label in samples:
        if as_json:
            record = {"index": made, "text": text, "prime": prime, "ended": ended, "seed": seed,
                      **({"label": label} if label is not None else {})}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            out.write(("\n" if cut_before else "") + text + "\n")  # a blank line after a sample cut at --length
        out.flush()
        cut_before = ended == "length"
        made += 1
    return made


def write_beams(found, prime: str, beam: int, as_json: bool, out) -> None:
    """Print beam search's continuations (beam.Hypothesis), likeliest first: as samples are, or one JSON object each
    with its log-probability (nats)."""
    if not as_json:  # as samples print
        write_whole_samples(((prime + h.text, h.ended, h.label) for h in found), prime, 0, False, out)
        return
    for index, h in enumerate(found):
        record = {"index": index, "text": prime + h.text, "prime": prime, "ended": h.ended,
                  "logprob": round(h.logprob, 6), "beam": beam, **({"label": h.label} if h.label is not None else {})}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


# -- eval and score -----------------------------------------------------------------------------

def eval_header(as_json: bool, dynamic: bool = False) -> None:
    if not as_json:
        print("file\tnats/char\tbpc\tperplexity\tscored" + ("\tdynamic nats/char\tdynamic bpc" if dynamic else ""))


def eval_row(name: str, loss: Loss, as_json: bool, dynamic: Loss | None = None) -> None:
    """One file's static loss (the headline) and, with --dynamic, its dynamic-evaluation loss beside it."""
    m = loss.nats
    if as_json:
        record = {"file": name, "nats_per_char": round(m, 6), "bpc": round(loss.bpc, 6),
                  "perplexity": round(loss.perplexity, 6), "scored": loss.count}
        if dynamic is not None:
            record.update(dynamic_nats_per_char=round(dynamic.nats, 6), dynamic_bpc=round(dynamic.bpc, 6))
        print(json.dumps(record), flush=True)
    else:
        extra = f"\t{dynamic.nats:.4f}\t{dynamic.bpc:.4f}" if dynamic is not None else ""
        print(f"{name}\t{m:.4f}\t{loss.bpc:.4f}\t{loss.perplexity:.3f}\t{loss.count}{extra}", flush=True)


def score_record(doc: str, loss: Loss | None, unknown: list[str], kind: tuple[str, float] | None = None) -> dict:
    """One scored document as JSON (score --json, serve's /v1/score): bpc and log-probability, None
    with the unknown characters listed when the model cannot read it; for a labelled model scored without a
    label, `kind` (its likeliest label, and that label's probability given the document)."""
    record = {"text": doc, "bpc": None if loss is None else round(loss.bpc, 5),
              "logprob": None if loss is None else round(-loss.nll, 5), "predictions": len(doc) + 1}
    if loss is None:
        record["unknown"] = unknown
    if kind is not None:
        record["label"], record["label_p"] = kind[0], round(kind[1], 5)
    return record


def score_row(doc: str, loss: Loss | None, unknown: list[str], as_json: bool, dynamic: Loss | None = None,
              show_dynamic: bool = False, kind: tuple[str, float] | None = None, labelled: bool = False) -> None:
    """One document's score: bpc (inf for a document with unknown characters), with --dynamic the
    dynamic-evaluation bpc beside it, with `labelled` its likeliest label (`kind`; '?' when unreadable), and the text."""
    if as_json:
        record = score_record(doc, loss, unknown, kind)
        if show_dynamic:
            record["dynamic_bpc"] = None if dynamic is None else round(dynamic.bpc, 5)
        print(json.dumps(record, ensure_ascii=False))
    else:
        inf = float("inf")
        extra = f"{dynamic.bpc if dynamic is not None else inf:.4f}\t" if show_dynamic else ""
        extra += f"{kind[0] if kind else '?'}\t" if labelled else ""
        print(f"{loss.bpc if loss is not None else inf:.4f}\t{extra}{doc}")


# -- serve --------------------------------------------------------------------------------------

def serving(path: Path, url: str, host: str) -> None:
    """Where the server listens (stderr): the page and the API are at url."""
    local = host in ("localhost", "::1") or host.startswith("127.")
    stderr_console().print(f"charrnn serve: {path} at {url} (Ctrl-C stops)"
                           + ("" if local else f"; listening on {host}: anyone who can reach this machine can use it"),
                           markup=False)


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
    from .data import EOS

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

        from .plot import terminal_chart

        Console(highlight=False).print(terminal_chart(runs), end="")
