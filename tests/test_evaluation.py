"""Scoring: parallel stretches equal one carried pass; documents scored alone equal the stream's loss."""

import numpy as np
import pytest
import torch

from charrnn.model.network import CharRNN, ModelConfig
from charrnn.scoring.evaluation import evaluate, score_documents
from charrnn.scoring.metrics import Loss
from charrnn.text.data import document_stream


def test_evaluate_streams_match_one_carried_pass():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=20, layers=1, hidden=32, embed=8, dropout=0.0)).eval()
    ids = np.random.default_rng(0).integers(0, 20, 5000)
    one = evaluate(model, ids, min_stream=10**9)
    many = evaluate(model, ids, min_stream=500, burn_in=200)
    assert one.count == many.count == 4999
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(ids[None, :-1]))
        exact = torch.nn.functional.cross_entropy(logits[0], torch.as_tensor(ids[1:]), reduction="sum").item()
    assert one.nll == pytest.approx(exact, rel=1e-5)
    assert many.nll == pytest.approx(exact, rel=1e-3)
    assert evaluate(model, ids[:1]) == Loss()


def test_scoring_documents_alone_equals_scoring_each_as_a_stream(model_vocab):
    model, vocab = model_vocab
    docs = ["To be, or not", "", "ROMEO:\nSoft!", "a \u2603 snowman"]
    losses = score_documents(model, vocab, docs)
    assert losses[3] is None  # a character the model never saw
    for doc, loss in zip(docs[:3], losses[:3], strict=True):
        whole = evaluate(model, document_stream([doc], vocab))  # EOS doc EOS
        assert loss.count == whole.count == len(doc) + 1
        assert loss.nll == pytest.approx(whole.nll, rel=1e-5)
