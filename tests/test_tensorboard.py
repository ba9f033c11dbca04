"""train --tensorboard: event files written by torch's writer, read back with tensorboard's own reader."""

import math
import sys

import pytest
from conftest import TINY_MODEL, tiny_config
from inprocess import invoke as run
from test_trainer import StopAt

from charrnn.training.config import TrainConfig
from charrnn.training.run_state import Progress, Reporter
from charrnn.training.tensorboard_log import TB_DIR, TensorBoardReporter
from charrnn.training.train import train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / TB_DIR), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_a_run_writes_every_curve_and_its_samples(tmp_path, corpus_text):
    cfg = tiny_config(steps=40, eval_every=20, ema=0.99)
    res = train([corpus_text[:8000]], TINY_MODEL, cfg, tmp_path, reporter=TensorBoardReporter(), sample_every_eval=40)
    acc = events(tmp_path)
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/chars_per_s", "val/loss", "val/bpc", "val/ema_loss", "val/ema_bpc"} <= tags
    assert [s for s, _ in scalars(acc, "train/loss")] == [10, 20, 30, 40]
    assert [s for s, _ in scalars(acc, "val/loss")] == [20, 40]
    # The same figures as metrics.jsonl, which the run's records hold.
    for (step, nats), (_, bpc), record in zip(scalars(acc, "val/loss"), scalars(acc, "val/bpc"), res.metrics, strict=True):
        assert step == record["step"] and nats == pytest.approx(record["val_loss"], abs=1e-5)
        assert bpc == pytest.approx(nats / math.log(2), rel=1e-5)
    lrs = [v for _, v in scalars(acc, "train/lr")]  # past the warm-up, the cosine decay
    assert lrs == sorted(lrs, reverse=True) and 0 < lrs[-1] < lrs[0] <= cfg.lr
    assert all(v > 0 for _, v in scalars(acc, "train/chars_per_s"))
    samples = acc.Tensors("val/sample/text_summary")
    assert [e.step for e in samples] == [20, 40]
    assert all(e.tensor_proto.string_val[0].strip() for e in samples)


def test_a_resumed_run_continues_the_curves_without_repeating_a_step(tmp_path, corpus_text):
    text, cfg = corpus_text[:8000], tiny_config(steps=40, eval_every=10)
    part = train([text], TINY_MODEL, cfg, tmp_path, reporter=TensorBoardReporter(StopAt(15)), sample_every_eval=0)
    assert part.progress.stopped == "interrupted" and part.progress.step == 15
    # A session that logged past its last checkpoint and was then killed: what it logged after step 15 is lost work.
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / TB_DIR)) as lost:
        lost.add_scalar("val/loss", 999.0, 20)
        lost.add_scalar("train/loss", 999.0, 20)
    train([text], {}, TrainConfig(device="cpu"), tmp_path, resume=True, reporter=TensorBoardReporter(), sample_every_eval=0)
    acc = events(tmp_path)
    val, loss = scalars(acc, "val/loss"), scalars(acc, "train/loss")
    assert [s for s, _ in val] == [10, 20, 30, 40] and [s for s, _ in loss] == [10, 20, 30, 40]
    assert all(v < 999 for _, v in val + loss)


def test_the_whole_split_score_at_the_end_is_a_point_of_its_own(tmp_path):
    rep = TensorBoardReporter()
    rep.start({"out": str(tmp_path), "resumed_at": None})
    rep.end({"progress": Progress(step=7, final_val=1.5)})
    assert scalars(events(tmp_path), "val/whole_split") == [(7, 1.5)]


def test_the_cli_writes_events_into_the_run_directory(tmp_path, corpus_text):
    (tmp_path / "c.txt").write_text(corpus_text[:6000], encoding="utf-8")
    r = run("train", "c.txt", "--steps", "20", "--eval-every", "10", "--hidden", "32", "--embed", "8",
            "--batch-size", "4", "--seq-len", "32", "--tensorboard", "--out", "r", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [s for s, _ in scalars(events(tmp_path / "r"), "val/bpc")] == [10, 20]


def test_without_the_package_it_is_one_line_and_nothing_is_written(tmp_path, corpus_text, monkeypatch):
    (tmp_path / "c.txt").write_text(corpus_text[:3000], encoding="utf-8")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    r = run("train", "c.txt", "--steps", "5", "--tensorboard", "--out", "r", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install tensorboard" in lines[0] and "--tensorboard" in lines[0]
    assert not (tmp_path / "r").exists()
    with pytest.raises(Exception, match="pip install tensorboard"):
        TensorBoardReporter(Reporter())
