import json
import math
import os
import signal

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, tiny_config

from charrnn.data import EOS
from charrnn.errors import UsageError
from charrnn.inference import load_model
from charrnn.model import CharRNN, ModelConfig
from charrnn.train import Reporter, TrainConfig, epoch_layout, evaluate, fit_batch_shape, lr_at, train


def test_tbptt_windows_are_contiguous_per_stream():
    ids = torch.arange(1000)
    B, T, offset = 4, 10, 3
    x, y = epoch_layout(ids, B, T, offset)
    assert x.shape == y.shape and x.shape[1] % T == 0
    # Each row is one contiguous stretch of the stream, targets one ahead of inputs.
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)
    assert torch.equal(y, x + 1)
    # The target of a window's last position is the next window's first input.
    for w in range(x.shape[1] // T - 1):
        assert torch.equal(y[:, (w + 1) * T - 1], x[:, (w + 1) * T])
    # Rows do not overlap and start at the offset.
    assert x[0, 0] == offset
    assert torch.all(x[1:, 0] > x[:-1, -1])


def test_short_corpus_shrinks_batch_and_says_so():
    cfg, note = fit_batch_shape(500, TrainConfig(batch_size=64, seq_len=32))
    assert cfg.batch_size * cfg.seq_len + cfg.seq_len < 500 and cfg.batch_size >= 1
    assert "short" in note and "--batch-size" in note
    same, none = fit_batch_shape(10**6, TrainConfig())
    assert same == TrainConfig() and none == ""


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, warmup=10, min_lr_frac=0.1)
    assert lr_at(cfg, 0, 0.0, 1.0) == pytest.approx(0.1)
    assert lr_at(cfg, 9, 0.0, 1.0) == pytest.approx(1.0)
    assert lr_at(cfg, 100, 0.5, 1.0) == pytest.approx(0.55)
    assert lr_at(cfg, 100, 1.0, 1.0) == pytest.approx(0.1)
    assert lr_at(cfg, 100, None, 0.25) == pytest.approx(0.25)


def test_small_model_overfits_short_text(tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 3
    res = train([text], dict(cell="lstm", layers=1, hidden=128, embed=16, dropout=0.0),
                tiny_config(steps=250, batch_size=1, seq_len=64, lr=1e-2, val_frac=0.0, weight_decay=0.0),
                tmp_path, sample_every_eval=0)
    assert res.progress.train_loss < 0.1, res.progress.train_loss


def test_training_learns_and_writes_run(trained_run, corpus_text):
    for name in ("best.pt", "last.pt", "metrics.jsonl"):
        assert (trained_run / name).is_file()
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [50, 100, 150]
    keys = {"step", "elapsed", "train_loss", "val_loss", "val_bpc", "chars_per_s", "lr"}
    assert keys <= set(records[0])
    for r in records:
        assert r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2), rel=1e-4)
    ln_v = math.log(len(set(corpus_text)) + 1)
    assert records[-1]["val_loss"] < ln_v - 1.0  # learned well beyond a uniform guess
    model, vocab, ckpt = load_model(trained_run / "best.pt")
    assert ckpt["progress"]["best_step"] == min(records, key=lambda r: r["val_loss"])["step"]


def test_evaluate_streams_match_one_carried_pass():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=20, layers=1, hidden=32, embed=8, dropout=0.0)).eval()
    ids = np.random.default_rng(0).integers(0, 20, 5000)
    one, n1 = evaluate(model, ids, min_stream=10**9)
    many, n2 = evaluate(model, ids, min_stream=500, burn_in=200)
    assert n1 == n2 == 4999
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(ids[None, :-1]))
        exact = torch.nn.functional.cross_entropy(logits[0], torch.as_tensor(ids[1:]), reduction="sum").item()
    assert one == pytest.approx(exact, rel=1e-5)
    assert many == pytest.approx(exact, rel=1e-3)


class StopAt(Reporter):
    """Sends this process SIGINT after step `k`, as a user pressing Ctrl-C would."""

    def __init__(self, k):
        self.k = k

    def step(self, progress, *args):
        if progress.step == self.k:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("stop_at", [7, 17, 23])
def test_interrupted_then_resumed_run_ends_bit_identical(tmp_path, corpus_text, stop_at):
    text = corpus_text[:5000]  # ~17 windows an epoch: the runs cross epoch boundaries
    cfg = tiny_config(steps=30, eval_every=10)
    model_cfg = dict(TINY_MODEL, dropout=0.2)  # dropout draws from the RNG: resume must restore it
    train([text], model_cfg, cfg, tmp_path / "full", sample_every_eval=0)
    part = train([text], model_cfg, cfg, tmp_path / "part", reporter=StopAt(stop_at), sample_every_eval=0)
    assert part.progress.stopped == "interrupted" and part.progress.step == stop_at
    # No budget given on resume: the run's own (30 steps) is finished.
    train([text], {}, TrainConfig(device="cpu"), tmp_path / "part", resume=True, sample_every_eval=0)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert a["progress"]["step"] == b["progress"]["step"] == 30
    assert a["progress"]["epoch"] == b["progress"]["epoch"] >= 1
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["val_loss"] for r in a["metrics"]] == [r["val_loss"] for r in b["metrics"]]


def test_resume_with_other_corpus_or_model_is_refused(tmp_path, corpus_text):
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=3), tmp_path, sample_every_eval=0)
    with pytest.raises(UsageError, match="corpus differs"):
        train([corpus_text[5000:10000]], {}, tiny_config(steps=6), tmp_path, resume=True)
    with pytest.raises(UsageError, match="hidden 64 in the checkpoint, 128 asked for"):
        train([corpus_text[:5000]], {"hidden": 128}, tiny_config(steps=6), tmp_path, resume=True)


def test_validation_is_never_trained_on(tmp_path):
    # Documents whose tails use a character the heads never do: if validation leaked into
    # training, the model would give it real probability.
    docs = ["ab" * 200 + "z" * 40, "ba" * 200 + "z" * 40]
    train(docs, TINY_MODEL, tiny_config(steps=30, val_frac=0.1), tmp_path, sample_every_eval=0)
    model, vocab, _ = load_model(tmp_path / "last.pt")
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(vocab.encode("abab"))[None])
    p_z = torch.softmax(logits[0, -1], -1)[vocab.encode("z")[0]].item()
    assert p_z < 0.01
    assert EOS == 0


def test_force_resume_continues_on_another_corpus_with_the_checkpoints_model(tmp_path, corpus_text):
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=3), tmp_path, sample_every_eval=0)
    res = train([corpus_text[5000:10000]], {"hidden": 128}, tiny_config(steps=6), tmp_path, resume=True, force=True,
                sample_every_eval=0)
    assert res.progress.step == 6
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["model_config"]["hidden"] == TINY_MODEL["hidden"]  # a trained model keeps its shape
