"""Weight averaging: the average follows the weights, is evaluated beside them, wins best.pt when better, resumes exactly."""

import json

import torch
from conftest import TINY_MODEL, tiny_config
from test_trainer import StopAt

from charrnn.model.checkpoint import load_checkpoint
from charrnn.model.network import CharRNN, ModelConfig
from charrnn.training.averaging import WeightAverage
from charrnn.training.config import TrainConfig
from charrnn.training.train import train


def test_the_average_moves_toward_the_weights_and_swaps_in_and_out():
    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=10, hidden=8, embed=4))
    avg = WeightAverage(m, decay=0.9)
    start = [p.detach().clone() for p in m.parameters()]
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    avg.update()  # first update: d = min(0.9, 2/11), so the average moves most of the way
    for a, s in zip(avg.avg, start, strict=True):
        torch.testing.assert_close(a, s + 1 - 2 / 11)
    trained = [p.detach().clone() for p in m.parameters()]
    with avg.swapped_in():
        for p, a in zip(m.parameters(), avg.avg, strict=True):
            assert torch.equal(p, a)
    for p, t in zip(m.parameters(), trained, strict=True):
        assert torch.equal(p, t)


def test_averaged_run_records_both_losses_and_resumes_exactly(tmp_path, corpus_text):
    text = corpus_text[:8000]
    cfg = tiny_config(steps=40, eval_every=10, ema=0.9)
    train([text], TINY_MODEL, cfg, tmp_path / "full", sample_every_eval=0)
    records = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert all("ema_val_loss" in r and "val_loss" in r for r in records)
    best = load_checkpoint(tmp_path / "full" / "best.pt")
    winner = min(records, key=lambda r: min(r["val_loss"], r["ema_val_loss"]))
    assert best["progress"]["best_val"] == min(winner["val_loss"], winner["ema_val_loss"])
    assert bool(best.get("averaged")) == (winner["ema_val_loss"] < winner["val_loss"])
    # Interrupted at step 17 (Ctrl-C) and resumed: the same weights and the same average as the straight run.
    part = train([text], TINY_MODEL, cfg, tmp_path / "part", reporter=StopAt(17), sample_every_eval=0)
    assert part.progress.step == 17
    train([text], {}, TrainConfig(device="cpu"), tmp_path / "part", resume=True, sample_every_eval=0)
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "part" / "last.pt")
    assert b["train_config"]["ema"] == 0.9 and a["ema"]["updates"] == b["ema"]["updates"] == 40
    for x, y in zip(a["ema"]["avg"], b["ema"]["avg"], strict=True):
        torch.testing.assert_close(x, y)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_without_averaging_nothing_changes(trained_run):
    records = [json.loads(x) for x in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert all("ema_val_loss" not in r for r in records)
    assert load_checkpoint(trained_run / "last.pt")["ema"] is None
