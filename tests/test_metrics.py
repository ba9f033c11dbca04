"""The loss type and the metrics.jsonl record."""

import json
import math

import pytest

from charrnn.scoring.metrics import LN2, EvalRecord, Loss, bits


def test_views_of_a_loss():
    loss = Loss(nll=20.0, count=10)
    assert loss.nats == 2.0
    assert loss.bpc == pytest.approx(2.0 / math.log(2))
    assert loss.perplexity == pytest.approx(math.exp(2.0))
    assert bits(LN2) == pytest.approx(1.0)
    assert math.isnan(Loss().nats)


def test_shards_add_up_to_the_whole():
    whole = Loss(6.0, 3) + Loss(2.0, 1) + Loss()
    assert whole == Loss(8.0, 4) and whole.nats == 2.0


def test_record_keys_rounding_and_round_trip():
    r = EvalRecord.make(step=5, epoch=0, chars_seen=640, elapsed=1.23456, train_loss=3.1234567, lr=0.001,
                        chars_per_s=1234.56, val=Loss(30.0, 10))
    d = r.to_dict()
    assert list(d) == ["step", "epoch", "chars_seen", "elapsed", "train_loss", "lr", "chars_per_s", "val_loss", "val_bpc"]
    assert (d["elapsed"], d["train_loss"], d["chars_per_s"], d["val_loss"]) == (1.235, 3.12346, 1234.6, 3.0)
    assert d["val_bpc"] == round(3.0 / math.log(2), 5)
    assert EvalRecord.from_dict(json.loads(json.dumps(d))) == r
    assert r.train_bpc == pytest.approx(r.train_loss / LN2)


def test_a_run_without_validation_writes_no_validation_keys():
    r = EvalRecord.make(step=1, epoch=0, chars_seen=1, elapsed=0, train_loss=1, lr=1, chars_per_s=1, val=None)
    assert "val_loss" not in r.to_dict() and "val_bpc" not in r.to_dict()
    assert EvalRecord.from_dict({**r.to_dict(), "from_a_later_version": 1}) == r
