"""charrnn inspect: predictions that are distributions, surprisal that adds up to eval's loss, units ranked by a feature."""

import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from inprocess import invoke as run

from charrnn.scoring.evaluation import evaluate
from charrnn.scoring.inspection import feature, inspect_text, rank_units, to_html
from charrnn.text.data import document_stream

TEXT = "ROMEO:\n  But soft, what light\n    through yonder window breaks?\n"


def test_predictions_are_distributions_and_surprisal_is_evals_loss(model_vocab):
    model, vocab = model_vocab
    ins = inspect_text(model, vocab, TEXT)
    assert ins.probs.shape == (len(TEXT) + 1, len(vocab))
    np.testing.assert_allclose(ins.probs.sum(1), 1.0, atol=1e-9)
    loss = evaluate(model, document_stream([TEXT], vocab))
    assert loss.count == len(TEXT) + 1
    assert ins.loss().nats == pytest.approx(loss.nats, rel=1e-5) and ins.loss().count == loss.count
    top = ins.top(3)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True) and len(top) == 5
    assert ins.hidden.shape == (len(TEXT) + 1, model.config.layers, model.config.hidden)
    assert np.abs(ins.hidden).max() <= 1.0  # LSTM outputs are tanh-bounded


def test_features_and_unit_ranking(model_vocab):
    model, vocab = model_vocab
    text = 'He said "come here" and "go".\n  Two spaces\nnone'
    assert feature(text, "quote")[text.index("c")] == 1 and feature(text, "quote")[0] == 0
    assert feature(text, "indent")[text.index("Two")] == 2 and feature(text, "newline")[text.index("none") + 2] == 3
    ins = inspect_text(model, vocab, "".join(c for c in text if c in vocab))
    ranked = rank_units(ins, "".join(c for c in text if c in vocab), "newline")
    rs = [abs(r) for _, _, r in ranked]
    assert len(ranked) == 10 and rs == sorted(rs, reverse=True) and all(r <= 1 + 1e-9 for r in rs)
    # The top unit's correlation, recomputed directly.
    layer, unit, r = ranked[0]
    kept = "".join(c for c in text if c in vocab)
    acts = ins.hidden[1 : len(kept) + 1, layer, unit]
    assert r == pytest.approx(np.corrcoef(acts, feature(kept, "newline"))[0, 1], abs=1e-6)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_html_page_is_self_contained(model_vocab):
    model, vocab = model_vocab
    page = to_html(inspect_text(model, vocab, TEXT), TEXT, "t <&>")
    parser = _Page()
    parser.feed(page)
    tags = {t for t, _ in parser.tags}
    assert {"html", "head", "body", "pre", "span"} <= tags and not tags & {"script", "link", "img", "iframe"}
    assert not any(k in ("src", "href") for _, attrs in parser.tags for k in attrs)
    assert "http" not in page and "t &lt;&amp;&gt;" in page
    assert "".join(parser.text).count("But soft") == 1


def test_inspect_cli(tmp_path, trained_run):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    r = run("inspect", "-c", trained_run, "t.txt", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == len(TEXT) + 1 and rows[-1]["char"] is None and rows[0]["char"] == "R"
    assert all(len(row["top"]) == 5 for row in rows)
    r = run("inspect", "-c", trained_run, "t.txt", "--find", "indent", "--html", "v.html", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "layer\tunit\tr" and len(r.stdout.splitlines()) == 11
    assert (tmp_path / "v.html").read_text().startswith("<!DOCTYPE html>")
    r = run("inspect", "-c", trained_run, "t.txt", "--neuron", "5", cwd=tmp_path)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(TEXT)
    assert all(-1 <= float(line.split("\t")[1]) <= 1 for line in r.stdout.splitlines())
    for bad, message in ((["--neuron", "9999"], "units"), (["--find", "vowels"], "not known")):
        r = run("inspect", "-c", trained_run, "t.txt", *bad, cwd=tmp_path)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_model_state_is_not_changed_by_inspecting(model_vocab):
    model, vocab = model_vocab
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inspect_text(model, vocab, TEXT)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _on_a_terminal(args, cwd):
    """Run charrnn with stdout on a pseudo-terminal; returns what it wrote there."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", *map(str, args)], stdout=slave, stderr=subprocess.PIPE,
                            cwd=cwd)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    os.close(master)
    return out.decode("utf-8", "replace")


def test_color_styles_a_terminal_and_never_a_pipe(trained_run, tmp_path):
    args = ["sample", "-c", trained_run, "--length", "60", "--seed", "4", "-q"]
    painted = _on_a_terminal([*args, "--color"], tmp_path)
    assert painted.count("\x1b[38;2;") >= 20
    piped = run(*args, "--color", cwd=tmp_path)
    plain = run(*args, cwd=tmp_path)
    assert "\x1b" not in piped.stdout and piped.stdout == plain.stdout


def test_drawn_characters_come_with_their_probability(model_vocab):
    from charrnn.writing.config import SampleConfig
    from charrnn.writing.sample import generate

    model, vocab = model_vocab
    events = list(generate(model, vocab, "", SampleConfig(length=50, greedy=True, seed=0), with_prob=True))
    assert all(0 < p <= 1 for _, _, p in events)
    ins = inspect_text(model, vocab, "".join(ch for _, ch, _ in events if ch))
    # Greedy: each drawn character was the likeliest, with the probability inspect reports for it.
    for t, (_, ch, p) in enumerate(e for e in events if e[1]):
        assert ins.top(t, 1)[0][0] == ch and p == pytest.approx(ins.probs[t].max(), rel=1e-4)
