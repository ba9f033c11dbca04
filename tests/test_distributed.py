"""torchrun with gloo on the CPU: two processes with half the streams each train like one with all of them."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import SHAKESPEARE
from inprocess import invoke

pytestmark = pytest.mark.slow  # end to end in real processes: make test-fast leaves it out

COMMON = ["--layers", "1", "--hidden", "32", "--embed", "8", "--dropout", "0", "--seq-len", "16", "--lr", "0.01",
          "--warmup", "3", "--eval-every", "5", "--seed", "3", "--device", "cpu", "--threads", "1", "-q",
          "--sample-length", "0"]


def charrnn(*args, procs=1, cwd):
    """`charrnn train ARGS` in one process (this one: inprocess.invoke), or under torchrun in `procs`."""
    if procs == 1:
        r = invoke("train", *args, *COMMON, cwd=cwd)
        assert r.returncode == 0, r.stderr[-3000:]
        return r
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    r = subprocess.run([*launcher, "-m", "charrnn", "train", *map(str, args), *COMMON], cwd=cwd, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def curve(run):
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return [(m["step"], m["train_loss"], m["val_loss"]) for m in records]


def weights(run):
    return torch.load(run / "last.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:30_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """The same training in one process with 8 streams and in two with 4 each: 10 steps, then resumed with a new
    budget of 20 (the schedule follows the budget), so that the resumed runs must agree, carried state and all."""
    d = tmp_path_factory.mktemp("runs")
    one, two = d / "one", d / "two"
    for run, procs, batch in ((one, 1, 8), (two, 2, 4)):
        charrnn(corpus, "--batch-size", batch, "--steps", 10, "--out", run, procs=procs, cwd=d)
        charrnn(corpus, "--batch-size", batch, "--steps", 20, "--out", run, "--resume", procs=procs, cwd=d)
    return one, two


def assert_same_training(a, b):
    ca, cb = curve(a), curve(b)
    assert [c[0] for c in ca] == [c[0] for c in cb]
    for (_, ta, va), (_, tb, vb) in zip(ca, cb, strict=True):
        assert ta == pytest.approx(tb, rel=1e-4) and va == pytest.approx(vb, rel=1e-4)
    wa, wb = weights(a), weights(b)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


def test_two_processes_with_half_the_streams_each_match_one_process_and_resume(runs):
    one, two = runs
    assert [m[0] for m in curve(two)] == [5, 10, 15, 20]
    assert_same_training(one, two)
    ckpt = torch.load(two / "last.pt", weights_only=True)
    assert ckpt["world"] == 2 and len(ckpt["rng_ranks"]) == 2
    assert ckpt["state"][0].shape[1] == 8  # both ranks' streams are saved
    assert not (two / "metrics.jsonl.tmp").exists()


def test_resuming_with_another_number_of_processes_is_refused(runs, corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs[1], run)
    r = invoke("train", corpus, "--out", run, "--resume", "--steps", "25", cwd=tmp_path)
    assert r.returncode == 2 and "--nproc_per_node=2" in r.stderr


def test_fine_tuning_under_torchrun_matches_one_process(runs, tmp_path):
    single = runs[0]
    text = tmp_path / "new.txt"  # another stretch of the play, with a character the base lacks
    text.write_text(SHAKESPEARE.read_text(encoding="utf-8")[30_000:50_000].replace("th", "þ"), encoding="utf-8")
    one, two = tmp_path / "one", tmp_path / "two"
    charrnn(text, "--init", single, "--batch-size", 8, "--steps", 10, "--out", one, cwd=tmp_path)
    charrnn(text, "--init", single, "--batch-size", 4, "--steps", 10, "--out", two, procs=2, cwd=tmp_path)
    assert_same_training(one, two)
    base_vocab = torch.load(single / "last.pt", weights_only=True)["vocab"]
    vocab = torch.load(two / "last.pt", weights_only=True)["vocab"]
    assert vocab[: len(base_vocab)] == base_vocab and "þ" in vocab[len(base_vocab):]


def test_a_batch_ramp_under_torchrun_doubles_each_ranks_streams_as_one_process_does(corpus, tmp_path):
    # One process ramps 2 -> 8 streams; two ramp 1 -> 4 each: the same windows, each rank doubling its own block (in
    # another order within the batch, so sums differ in rounding: AdamW, which does not amplify it as Muon's bf16 can).
    one, two = tmp_path / "one", tmp_path / "two"
    ramp = ["--steps", 15, "--optimizer", "adamw"]
    charrnn(corpus, "--batch-size", 8, "--batch-ramp", 2, *ramp, "--out", one, cwd=tmp_path)
    charrnn(corpus, "--batch-size", 4, "--batch-ramp", 1, *ramp, "--out", two, procs=2, cwd=tmp_path)
    assert_same_training(one, two)
    assert torch.load(two / "last.pt", weights_only=True)["progress"]["splits"]  # it doubled mid-epoch
