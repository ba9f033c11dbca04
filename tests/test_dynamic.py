"""Dynamic evaluation: scores before it learns, never looks ahead, helps on text that repeats, leaves the model alone."""

import numpy as np
import pytest
import torch

from charrnn.errors import UsageError
from charrnn.scoring.config import DynamicConfig
from charrnn.scoring.dynamic import Adapter, adapted_to_prime, dynamic_evaluate
from charrnn.scoring.evaluation import evaluate
from charrnn.text.data import EOS, document_stream

PASSAGE = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and the sun is in it.\n"


def stream(vocab, text):
    return np.concatenate([[EOS], vocab.encode(text)])


def test_without_learning_it_is_one_carried_pass(model_vocab):
    model, vocab = model_vocab
    ids = stream(vocab, PASSAGE * 3)
    still = dynamic_evaluate(model, ids, DynamicConfig(rule="sgd", lr=1e-12, segment=17))
    static = evaluate(model, ids, min_stream=10**9)
    assert still.count == static.count == len(ids) - 1
    assert still.nll == pytest.approx(static.nll, rel=1e-5)


def test_a_segment_is_scored_before_the_model_learns_from_it(model_vocab):
    # One segment holding the whole text: however large the step, nothing is learned before scoring ends.
    model, vocab = model_vocab
    ids = stream(vocab, PASSAGE)
    once = dynamic_evaluate(model, ids, DynamicConfig(rule="sgd", lr=10.0, segment=len(ids)))
    assert once.nll == pytest.approx(evaluate(model, ids, min_stream=10**9).nll, rel=1e-5)


@pytest.mark.parametrize("cfg, share", [  # the tiny shared model (64 units) measured 0.74 and 0.90 of static
    (DynamicConfig(rule="rms", lr=3e-2, segment=16), 0.85),
    (DynamicConfig(rule="sgd", lr=1.0, segment=64), 0.95),
])
def test_learning_from_the_text_helps_where_it_repeats(model_vocab, cfg, share):
    model, vocab = model_vocab
    ids = stream(vocab, PASSAGE * 6)
    dynamic = dynamic_evaluate(model, ids, cfg)
    static = evaluate(model, ids, min_stream=10**9)
    assert dynamic.nats < share * static.nats, (dynamic.nats, static.nats)


def test_the_model_itself_is_never_changed(model_vocab):
    model, vocab = model_vocab
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dynamic_evaluate(model, stream(vocab, PASSAGE * 2), DynamicConfig(lr=1e-2))
    adapted = adapted_to_prime(model, vocab, PASSAGE, DynamicConfig(lr=1e-2))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not adapted.training and any(not torch.equal(p, before[k]) for k, p in adapted.state_dict().items())


def test_decay_pulls_back_toward_the_trained_weights(model_vocab):
    model, vocab = model_vocab
    ids = stream(vocab, PASSAGE * 2)

    def drift(decay):
        a = Adapter(model, DynamicConfig(rule="sgd", lr=0.5, decay=decay))
        a.feed(ids)
        return sum(float((p - q).detach().norm()) for p, q in zip(a.model.parameters(), model.parameters(), strict=True))

    assert drift(0.5) < 0.5 * drift(0.0)


def test_documents_start_from_a_fresh_state(model_vocab):
    model, vocab = model_vocab
    a = Adapter(model, DynamicConfig(rule="sgd", lr=1e-12))
    first = a.document(document_stream(["Romeo"], vocab))
    assert first.nll == pytest.approx(evaluate(model, document_stream(["Romeo"], vocab), min_stream=10**9).nll, rel=1e-5)


@pytest.mark.parametrize("cfg, message", [
    (DynamicConfig(rule="adam"), "--dynamic-rule 'adam' is not known"),
    (DynamicConfig(lr=0.0), "--dynamic-lr"),
    (DynamicConfig(segment=0), "--dynamic-segment"),
    (DynamicConfig(decay=1.0), "--dynamic-decay"),
])
def test_bad_settings_are_refused(model_vocab, cfg, message):
    model, _ = model_vocab
    with pytest.raises(UsageError, match=message):
        Adapter(model, cfg)
    with pytest.raises(UsageError, match="--adapt learns from the prime"):
        adapted_to_prime(model, model_vocab[1], "", DynamicConfig())
