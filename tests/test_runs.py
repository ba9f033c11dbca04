"""Setting a run up: resuming refuses contradictions unless forced."""

import pytest
import torch
from conftest import TINY_MODEL, tiny_config

from charrnn.errors import UsageError
from charrnn.train import train


def test_resume_with_other_corpus_or_model_is_refused(tmp_path, corpus_text):
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=3), tmp_path, sample_every_eval=0)
    with pytest.raises(UsageError, match="corpus differs"):
        train([corpus_text[5000:10000]], {}, tiny_config(steps=6), tmp_path, resume=True)
    with pytest.raises(UsageError, match="hidden 64 in the checkpoint, 128 asked for"):
        train([corpus_text[:5000]], {"hidden": 128}, tiny_config(steps=6), tmp_path, resume=True)


def test_force_resume_continues_on_another_corpus_with_the_checkpoints_model(tmp_path, corpus_text):
    train([corpus_text[:5000]], TINY_MODEL, tiny_config(steps=3), tmp_path, sample_every_eval=0)
    res = train([corpus_text[5000:10000]], {"hidden": 128}, tiny_config(steps=6), tmp_path, resume=True, force=True,
                sample_every_eval=0)
    assert res.progress.step == 6
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["model_config"]["hidden"] == TINY_MODEL["hidden"]  # a trained model keeps its shape
