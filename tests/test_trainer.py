"""The training loop, for real on tiny models: learning, records, exact resume after Ctrl-C, no leaks."""

import json
import math
import os
import signal

import pytest
import torch
from conftest import TINY_MODEL, tiny_config

from charrnn.api.loading import load_model
from charrnn.errors import CharrnnError
from charrnn.text.data import EOS
from charrnn.training.config import TrainConfig
from charrnn.training.train import train
from charrnn.training.trainer import Reporter, Trainer


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


def test_validation_is_never_trained_on(tmp_path):
    # Documents whose tails use a character the heads never do: if validation leaked into
    # training, the model would give it real probability.
    docs = ["ab" * 200 + "z" * 40, "ba" * 200 + "z" * 40]
    # AdamW: in 30 steps it lowers an unseen character's logit surely; Muon (the default for so few passes) moves
    # the recurrent weights differently and leaves 'z' at ~2% after "abab" here, which proves nothing either way.
    train(docs, TINY_MODEL, tiny_config(steps=30, val_frac=0.1, optimizer="adamw"), tmp_path, sample_every_eval=0)
    model, vocab, _ = load_model(tmp_path / "last.pt")
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(vocab.encode("abab"))[None])
    p_z = torch.softmax(logits[0, -1], -1)[vocab.encode("z")[0]].item()
    assert p_z < 0.01
    assert EOS == 0




class Notes(Reporter):
    def __init__(self):
        self.ended = None

    def end(self, summary):
        self.ended = summary


def test_a_time_budget_stops_early_once_more_time_only_overfits(tmp_path, corpus_text):
    notes = Notes()
    budget = 120.0
    res = train([corpus_text[:1000]], dict(TINY_MODEL, hidden=128),
                tiny_config(steps=None, time_budget=budget, eval_every=10, patience=3, lr=2e-2, val_frac=0.2), tmp_path,
                reporter=notes, sample_every_eval=0)
    p = res.progress
    assert p.stopped == "early" and p.elapsed < budget / 2
    vals = [m["val_loss"] for m in res.metrics]
    best = vals.index(min(vals))
    assert len(vals) - 1 - best == 3 and res.metrics[best]["step"] == p.best_step  # three worse evaluations in a row
    assert torch.load(tmp_path / "best.pt", weights_only=True)["progress"]["step"] == p.best_step
    assert notes.ended["progress"].stopped == "early"


def test_patience_zero_spends_the_whole_time_budget(tmp_path, corpus_text):
    res = train([corpus_text[:1000]], dict(TINY_MODEL, hidden=128),
                tiny_config(steps=None, time_budget=3.0, eval_every=10, patience=0, lr=2e-2, val_frac=0.2), tmp_path,
                sample_every_eval=0)
    assert res.progress.stopped == "time"


def test_a_loss_that_turns_non_finite_stops_the_run_and_keeps_the_last_good_checkpoints(tmp_path, corpus_text, monkeypatch):
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=20, eval_every=10), tmp_path, sample_every_eval=0)
    good = torch.load(tmp_path / "last.pt", weights_only=True)
    real = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step",
                        lambda self, x, y, lr: real(self, x, y, lr) * (math.nan if self.prog.step >= 25 else 1.0))
    with pytest.raises(CharrnnError, match=r"training diverged: the training loss is nan at step 30;.* lower --lr"):
        train([corpus_text[:5000]], {}, tiny_config(steps=40, eval_every=10), tmp_path, resume=True, sample_every_eval=0)
    kept = torch.load(tmp_path / "last.pt", weights_only=True)
    assert kept["progress"]["step"] == 20 and torch.equal(kept["model"]["head.weight"], good["model"]["head.weight"])


def test_time_waited_at_the_host_sync_counts_against_the_budget(tmp_path, corpus_text, monkeypatch):
    # On a GPU the steps are queued and the host waits for them at the sync every 10 steps: a sleep there
    # stands for that wait, which the clock, the time budget and chars/s must all see.
    import time

    real, wait = Trainer.agree, 0.5
    monkeypatch.setattr(Trainer, "agree", lambda self, stop: (time.sleep(wait), real(self, stop))[1])
    result = train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=30, eval_every=30), tmp_path, sample_every_eval=0)
    assert result.progress.elapsed >= 3 * wait
    assert result.chars_per_s <= 30 * 8 * 32 / (3 * wait)
    timed = train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=None, time_budget=1.0, eval_every=10**6),
                  tmp_path / "timed", sample_every_eval=0)
    assert timed.progress.step <= 30  # a second holds two waits: 20 steps and a few


def test_a_half_precision_carried_state_in_a_checkpoint_resumes_in_fp32(tmp_path, corpus_text):
    # Under autocast the carried state comes back in half precision; checkpoints now hold it in fp32, and one
    # written before (say by a GPU run in fp16) is read back in fp32, which the CPU's fp32 LSTM needs.
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=4, eval_every=4), tmp_path, sample_every_eval=0)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert all(s.dtype == torch.float32 for s in ckpt["state"])
    ckpt["state"] = [s.half() for s in ckpt["state"]]
    torch.save(ckpt, tmp_path / "last.pt")
    train([corpus_text[:5000]], {}, tiny_config(steps=8, eval_every=4), tmp_path, resume=True, sample_every_eval=0)
    resumed = torch.load(tmp_path / "last.pt", weights_only=True)
    assert resumed["progress"]["step"] == 8 and all(s.dtype == torch.float32 for s in resumed["state"])


def test_no_time_is_kept_for_an_end_score_that_the_share_leaves_no_room_for(tmp_path, corpus_text, monkeypatch):
    from charrnn.training.schedule import Watching

    monkeypatch.setattr(Watching, "WATCH_SHARE", 0.0)  # the end may score no more than the evaluations do
    res = train([corpus_text], TINY_MODEL, tiny_config(steps=None, time_budget=4.0, eval_every=None, patience=0,
                                                        val_frac=0.5), tmp_path, sample_every_eval=0)
    p = res.progress
    assert p.val_sample == p.final_chars == Watching.PROBE_CHARS < len(corpus_text) // 2
    assert p.final_reserve == 0 and math.isnan(p.final_val)  # nothing planned, so nothing kept from the training


def test_a_time_budget_evaluates_a_fixed_sample_and_scores_the_best_on_the_whole_split(tmp_path, corpus_text,
                                                                                      monkeypatch):
    from inprocess import invoke

    from charrnn.training.schedule import Watching

    # 8 s is tiny: with 5% of it the end could score no more than the evaluations do. A larger share lets it score
    # the whole split whatever this machine's speed (the 5% share is met in `make bench`).
    monkeypatch.setattr(Watching, "WATCH_SHARE", 0.5)
    notes = Notes()
    res = train([corpus_text], TINY_MODEL, tiny_config(steps=None, time_budget=8.0, eval_every=None, patience=0,
                                                        val_frac=0.5), tmp_path, reporter=notes, sample_every_eval=0)
    p = res.progress
    # 2% of 8 s buys about the smallest sample (a little more on a fast machine), well under the 20k split
    assert Watching.PROBE_CHARS <= p.val_sample < 0.9 * len(corpus_text) // 2
    assert math.isfinite(p.final_val) and p.final_val != p.best_val
    assert 0 < p.watch_s < p.elapsed and len(res.metrics) >= 2
    assert p.final_chars == 0 and p.final_reserve > 0  # the whole split, its time kept from the training
    assert p.elapsed < 8.0 * 1.2  # the end's score fits in the budget (within what timing a few steps can promise)
    best = torch.load(tmp_path / "best.pt", weights_only=True)["progress"]
    assert (best["final_val"], best["val_sample"], best["step"]) == (p.final_val, p.val_sample, p.best_step)
    info = invoke("info", "-c", tmp_path / "best.pt", cwd=tmp_path).stdout
    assert "whole validation split" in info and f"sample of {p.val_sample:,} chars" in info


def test_a_batch_ramp_doubles_the_streams_counts_them_and_resumes_exactly(tmp_path, corpus_text):
    cfg = tiny_config(steps=60, eval_every=20, batch_size=16, batch_ramp=4)
    whole = train([corpus_text[:20_000]], TINY_MODEL, cfg, tmp_path / "whole", sample_every_eval=0)
    # 4 streams of 32 characters for the first third of the steps, 8 for the second, 16 for the last
    assert [m["chars_seen"] for m in whole.metrics] == [20 * 4 * 32, 20 * (4 + 8) * 32, 20 * (4 + 8 + 16) * 32]
    part = train([corpus_text[:20_000]], TINY_MODEL, cfg, tmp_path / "part", reporter=StopAt(33), sample_every_eval=0)
    assert part.progress.stopped == "interrupted" and part.progress.splits  # stopped after a doubling, mid-epoch
    train([corpus_text[:20_000]], {}, TrainConfig(device="cpu"), tmp_path / "part", resume=True, sample_every_eval=0)
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["progress"]["chars_seen"] == b["progress"]["chars_seen"]


@pytest.mark.parametrize("flags, message", [
    (["--batch-ramp", "3", "--batch-size", "16", "--steps", "5"], "power-of-two multiple of .such as 4"),
    (["--batch-ramp", "8"], "give --time or --steps|a --time or --steps budget"),
    (["--batch-ramp", "8", "--epochs", "1"], "not --epochs"),
])
def test_a_ramp_that_cannot_work_is_refused_before_any_work(tmp_path, flags, message):
    import re

    from inprocess import invoke

    (tmp_path / "text.txt").write_text("hello world\n" * 200)
    r = invoke("train", "text.txt", *flags, cwd=tmp_path)
    assert r.returncode == 2 and re.search(message, r.stderr) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "checkpoints").exists()
