"""Nothing lost: kill -9 at any moment, disk full, SIGTERM."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY_MODEL, tiny_config

from charrnn.errors import CharrnnError
from charrnn.model import checkpoint as ckpt_io
from charrnn.model.checkpoint import load_checkpoint
from charrnn.training.train import train

pytestmark = pytest.mark.slow  # end to end in real processes: make test-fast leaves it out


def _start_training(cwd, out, text):
    (cwd / "c.txt").write_text(text, encoding="utf-8")
    args = ["train", "c.txt", "--out", out, "--steps", "1000000", "--hidden", "32", "--embed", "8",
            "--batch-size", "4", "--seq-len", "16", "--eval-every", "1", "--sample-length", "0", "-q"]
    return subprocess.Popen([sys.executable, "-m", "charrnn", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, NO_COLOR="1"))


def _wait_for(path, timeout=60):
    """Wait until the training subprocess has written `path` (its first checkpoint)."""
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} was not written within {timeout}s"


def test_kill_9_at_any_moment_leaves_loadable_checkpoints(tmp_path, corpus_text):
    # Checkpoints are written at every step, so the kills land during writes too.
    for delay in (0.3, 0.55, 0.8, 1.05, 1.3):
        proc = _start_training(tmp_path, "run", corpus_text[:8000])
        _wait_for(tmp_path / "run" / "last.pt")
        time.sleep(delay)
        proc.kill()
        proc.wait()
        for name in ("best.pt", "last.pt"):
            ckpt = load_checkpoint(tmp_path / "run" / name)
            assert ckpt["progress"]["step"] >= 1
    # Temporary files of interrupted writes never carry the final names.
    names = {p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")}
    assert names <= {"best.pt", "last.pt", "metrics.jsonl", "corpus"}


def test_sigterm_writes_last_and_exits_143(tmp_path, corpus_text):
    proc = _start_training(tmp_path, "term", corpus_text[:8000])
    _wait_for(tmp_path / "term" / "last.pt")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated: resume with" in err and "Traceback" not in err
    assert load_checkpoint(tmp_path / "term" / "last.pt")["progress"]["step"] >= 1


def test_disk_full_while_saving_keeps_previous_checkpoints(tmp_path, corpus_text, monkeypatch):
    text = corpus_text[:5000]
    train([text], TINY_MODEL, tiny_config(steps=10, eval_every=5), tmp_path, sample_every_eval=0)
    before = {n: (tmp_path / n).read_bytes() for n in ("best.pt", "last.pt")}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_io.torch, "save", full)
    with pytest.raises(CharrnnError, match="No space left on device.*free disk space") as info:
        train([text], {}, tiny_config(steps=20, eval_every=5), tmp_path, resume=True, sample_every_eval=0)
    assert info.value.exit_code == 1
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["progress"]["step"] == 10


def test_disk_full_in_the_cli_is_one_line_exit_1(tmp_path):
    # A run directory that cannot be created stands in for an unwritable --out.
    (tmp_path / "blocker").write_text("a file, not a folder")
    (tmp_path / "c.txt").write_text("some text to learn from " * 40)
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", "c.txt", "--out", "blocker/run", "--steps", "2"],
                       cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1"))
    assert r.returncode == 1
    assert "cannot create the run directory" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("gap", [0.0, 0.02, 0.2])
def test_second_ctrl_c_exits_at_once_and_leaves_files_whole(tmp_path, corpus_text, gap):
    proc = _start_training(tmp_path, "twice", corpus_text[:8000])
    _wait_for(tmp_path / "twice" / "last.pt")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    for name in ("best.pt", "last.pt"):
        assert load_checkpoint(tmp_path / "twice" / name)["progress"]["step"] >= 1
    assert not [p for p in (tmp_path / "twice").iterdir() if p.name.endswith(".tmp")]


def test_a_ctrl_c_that_python_wraps_in_another_error_is_still_an_interrupt(capsys):
    # Seen once under load: the second Ctrl-C landed while matplotlib's first import (for loss.png) was making a class,
    # and Python reported it as "RuntimeError: Error calling __set_name__" caused by the KeyboardInterrupt.
    import typer

    from charrnn.cli.failures import command

    class Interrupted:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    @command
    def making_a_class():
        class Late:
            x = Interrupted()

    with pytest.raises(typer.Exit) as e:
        making_a_class()
    assert e.value.exit_code == 130 and "interrupted" in capsys.readouterr().err
