"""Every bad input: one line naming the problem and the fix, exit 2, no traceback, nothing written."""

import os
import subprocess
import sys

import pytest
from inprocess import invoke as run

BAD = [
    # (files to create, command, message)
    ({}, ["train", "missing.txt"], "no such file"),
    ({"d/x.txt": b"text"}, ["train", "d"], "is a directory"),
    ({"e.txt": b""}, ["train", "e.txt"], "is empty"),
    ({"b.bin": b"\x7fELF\x00\x00\x01binary"}, ["train", "b.bin"], "NUL bytes"),
    ({"u.txt": b"caf\xe9 au lait"}, ["train", "u.txt"], "invalid UTF-8 at byte 3"),
    ({"u.txt": b"caf\xe9"}, ["train", "u.txt", "--encoding", "klingon"], "not a known encoding"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--device", "tpu"], "not known"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--val-frac", "1.5"], "--val-frac must be in [0, 1)"),
    ({"t.txt": b"abcdef"}, ["train", "t.txt", "--val-frac", "0.01"], "leaves no validation text"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--lr", "-1"], "--lr must be a positive number"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--time", "soon"], "not a duration"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--patience", "-1"], "--patience must be 0"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--dropout", "1.5"], "--dropout must be in [0, 1)"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--weight-drop", "-0.2"], "--weight-drop must be in [0, 1)"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--cell", "transformer"], "--cell 'transformer' is not known"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--lines", "--doc-sep", "%"], "give one of them"),
    ({"t.txt": "".join(chr(0x4E00 + i) for i in range(300)).encode()}, ["train", "t.txt", "--max-vocab", "100"],
     "raise --max-vocab"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--resume"], "does not exist"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--threads", "0"], "--threads must be at least 1"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--precision", "fp8"], "--precision 'fp8' is not known"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA GPU"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--optimizer", "sgd"], "--optimizer 'sgd' is not known"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--beta1", "1"], "--beta1 and --beta2 must be in [0, 1)"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--beta2", "1"], "--beta1 and --beta2 must be in [0, 1)"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--ns-steps", "0"], "--ns-steps must be at least 1"),
    ({"t.txt": b"abc " * 50}, ["train", "t.txt", "--softmax", "tree"], "--softmax 'tree' is not known"),
    ({}, ["sample", "-c", "none.pt"], "no such checkpoint"),
    ({"fake.pt": b"PK\x03\x04 not really"}, ["sample", "-c", "fake.pt"], "not a readable checkpoint"),
    ({"fake.pt": b""}, ["info", "-c", "fake.pt"], "not a readable checkpoint"),
]


IN_A_PROCESS = {"train missing.txt", "train t.txt --precision fp8", "sample -c fake.pt"}  # also run as a real process


@pytest.mark.parametrize("files, args, message", BAD, ids=[" ".join(b[1]) for b in BAD])
def test_bad_input(tmp_path, files, args, message):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    r = run(*args, cwd=tmp_path)
    if " ".join(args) in IN_A_PROCESS:  # the same from a process of its own, as a user's shell starts it
        env = dict(os.environ, NO_COLOR="1")
        env.pop("CHARRNN_DEBUG", None)
        p = subprocess.run([sys.executable, "-m", "charrnn", *args], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=120)
        assert (p.returncode, p.stdout, p.stderr) == (r.returncode, r.stdout, r.stderr)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stdout == ""
    assert not (tmp_path / "checkpoints").exists()  # nothing written


@pytest.mark.parametrize("opts, message", [
    (["--temperature", "nan"], "--temperature must be"),
    (["--temperature", "-1"], "--temperature must be"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--length", "0"], "--length must be at least 1"),
    (["--num-samples", "0"], "--num-samples must be at least 1"),
    (["--stop", ""], "--stop must not be empty"),
    (["--prime", "ωmega"], "not in the model's vocabulary: 'ω'"),
    (["--device", "quantum"], "not known"),
])
def test_bad_sampling_input(trained_run, tmp_path, opts, message):
    r = run("sample", "-c", trained_run, *opts, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_undecodable_bytes_can_be_replaced_or_reencoded(tmp_path):
    (tmp_path / "l.txt").write_bytes(b"caf\xe9 au lait, " * 30)
    for extra in (["--errors", "replace"], ["--encoding", "latin-1"]):
        r = run("train", "l.txt", "--steps", "2", "--hidden", "8", "--out", "r", "-q", *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        import torch

        vocab = torch.load(tmp_path / "r" / "best.pt", weights_only=True)["vocab"]
        assert ("\ufffd" if "replace" in extra else "é") in vocab


def test_short_corpus_is_trained_with_a_smaller_window_and_says_so(tmp_path):
    (tmp_path / "s.txt").write_text("just a few words here\n" * 3)
    r = run("train", "s.txt", "--steps", "3", "--out", "s", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "corpus is short" in r.stderr and "--batch-size 1" in r.stderr
