import os
from pathlib import Path

import pytest

from charrnn.config import TrainConfig
from charrnn.train import train
from charrnn.trainer import Reporter

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "corpora" / "shakespeare.txt"

TINY_MODEL = dict(cell="lstm", layers=1, hidden=64, embed=16, dropout=0.0)


def tiny_config(**kw) -> TrainConfig:
    base = dict(seq_len=32, batch_size=8, lr=1e-2, warmup=5, steps=40, eval_every=20, seed=1, device="cpu")
    base.update(kw)
    return TrainConfig(**base)



class Notes(Reporter):
    """A reporter that keeps the notes a run prints (sizing choices, chosen dropout)."""

    def __init__(self):
        self.notes = []

    def message(self, text):
        self.notes.append(text)


@pytest.fixture(scope="session")
def corpus_text() -> str:
    """About 40k characters of the bundled Shakespeare (the project's own corpus)."""
    text = SHAKESPEARE.read_text(encoding="utf-8")
    return text[:40_000]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, corpus_text):
    """A tiny model trained for real on Shakespeare; returns its run directory."""
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(steps=150, eval_every=50)
    train([corpus_text], TINY_MODEL, cfg, out, sources=["shakespeare-head"], sample_every_eval=0)
    return out


@pytest.fixture(scope="session")
def model_vocab(trained_run):
    """The trained_run model (eval mode) and its vocabulary, loaded once."""
    from charrnn.inference import load_model

    model, vocab, _ = load_model(trained_run / "best.pt")
    return model, vocab


def pytest_collection_modifyitems(config, items):
    """Tests marked cuda run only where CUDA is there (make gpu-check); elsewhere they are skipped, saying why."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA is not available on this machine; make gpu-check runs these on an NVIDIA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("CHARRNN_DEBUG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    yield


os.environ.setdefault("OMP_NUM_THREADS", "2")
