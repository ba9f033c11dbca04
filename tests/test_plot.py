"""Loss plots: a valid PNG of the promised size, a chart on terminals only, a clear message without matplotlib."""

import struct
import sys

import pytest
from conftest import TINY_MODEL, tiny_config
from inprocess import invoke as run
from test_inspect import _on_a_terminal

from charrnn.errors import UsageError
from charrnn.scoring.metrics import EvalRecord
from charrnn.training.plot import load_run, terminal_chart, write_png
from charrnn.training.train import train


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_has_the_promised_size_and_training_draws_one(tmp_path, corpus_text, trained_run):
    out = tmp_path / "two.png"
    write_png([load_run(trained_run), load_run(trained_run / "best.pt")], out, width=800, height=300)
    assert png_size(out) == (800, 300)
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=10, eval_every=5), tmp_path / "run", sample_every_eval=0,
          plot=True)
    assert png_size(tmp_path / "run" / "loss.png") == (1000, 400)
    assert not list((tmp_path / "run").glob("*.tmp.png"))


def test_terminal_chart_marks_each_run():
    records = [EvalRecord(step=i, epoch=0, chars_seen=1000 * i, elapsed=i, train_loss=3.0 - i * 0.1, lr=1e-3,
                          chars_per_s=1.0, val_loss=2.8 - i * 0.1, val_bpc=4.0 - i * 0.2) for i in range(1, 9)]
    text = terminal_chart([("a", records), ("b", records[:4])]).plain
    assert text.count("●") + text.count("◆") >= 8 and "a" in text and "characters seen" in text


def test_plot_cli_draws_on_a_terminal_and_not_in_a_pipe(tmp_path, trained_run):
    piped = run("plot", trained_run, "-o", "p.png", cwd=tmp_path)
    assert piped.returncode == 0 and piped.stdout == "" and png_size(tmp_path / "p.png") == (1000, 400)
    shown = _on_a_terminal(["plot", trained_run, "-o", "q.png"], tmp_path)
    assert "●" in shown and "validation bpc" in shown
    bad = run("plot", tmp_path, cwd=tmp_path)
    assert bad.returncode == 2 and "no metrics.jsonl" in bad.stderr


def test_missing_matplotlib_is_a_clear_message(tmp_path, trained_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'charrnn\[plot\]'"):
        write_png([load_run(trained_run)], tmp_path / "x.png")
