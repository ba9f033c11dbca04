"""Beam search (sample --beam K, /v1/sample's beam): against greedy decoding, exhaustive search and the model's own
score of what it returns."""

import itertools
import json
import math

import pytest
import torch
from conftest import tiny_config
from inprocess import invoke as run
from test_serve import stream

from charrnn.api.loading import load_model
from charrnn.text.data import EOS
from charrnn.training.train import train
from charrnn.writing.beam import beam_search
from charrnn.writing.config import SampleConfig
from charrnn.writing.sample import Sampler


def greedy_text(model, vocab, prime, length, stop=()):
    cfg = SampleConfig(length=length, greedy=True, stop=stop)
    sampler = Sampler(model, vocab, prime, cfg)
    text = "".join(ch for _, ch in sampler.events() if ch is not None)
    return text, sampler.ended[0]


def logprob(model, vocab, prime, text, eos):
    """log p(text [, EOS] | EOS + prime) under the model, computed in one forward pass."""
    ids = [EOS, *vocab.encode(prime).tolist(), *vocab.encode(text).tolist()] + ([EOS] if eos else [])
    x = torch.tensor(ids[:-1])[None]
    with torch.no_grad():
        logits, _ = model(x)
    logp = torch.log_softmax(logits[0].double(), -1)
    first = len(prime)  # the prediction after EOS + prime is at position len(prime)
    return float(sum(logp[t, ids[t + 1]] for t in range(first, len(ids) - 1)))


@pytest.mark.parametrize("prime", ["ROMEO.", "The ", ""])
def test_one_beam_is_greedy_decoding(model_vocab, prime):
    model, vocab = model_vocab
    [found] = beam_search(model, vocab, prime, SampleConfig(length=60, beam=1))
    text, ended = greedy_text(model, vocab, prime, 60)
    assert (found.text, found.ended) == (text, ended)


@pytest.mark.parametrize("prime, width", [("ROMEO.", 2), ("ROMEO.", 5), ("The ", 3), ("", 8)])
def test_the_answer_is_never_less_likely_than_greedys_and_its_logprob_is_the_models(model_vocab, prime, width):
    model, vocab = model_vocab
    best = beam_search(model, vocab, prime, SampleConfig(length=50, beam=width))[0]
    greedy, greedy_end = greedy_text(model, vocab, prime, 50)
    assert best.logprob >= logprob(model, vocab, prime, greedy, greedy_end == "eos") - 1e-6
    assert best.logprob == pytest.approx(logprob(model, vocab, prime, best.text, best.ended == "eos"), abs=1e-4)


def test_n_best_are_distinct_and_likeliest_first(model_vocab):
    model, vocab = model_vocab
    found = beam_search(model, vocab, "ROMEO.", SampleConfig(length=40, beam=6, num_samples=4))
    assert len(found) == 4 and len({h.text for h in found}) == 4
    assert [h.logprob for h in found] == sorted((h.logprob for h in found), reverse=True)


def test_stop_strings_end_a_beam_and_count_in_its_logprob(model_vocab):
    model, vocab = model_vocab
    for keep in (False, True):
        found = beam_search(model, vocab, "ROMEO.", SampleConfig(length=80, beam=4, num_samples=3, stop=("\n",),
                                                                  keep_stop=keep))
        for h in found:
            assert "\n" not in (h.text[:-1] if keep else h.text)
            if h.ended == "stop":
                assert h.text.endswith("\n") == keep
                written = h.text if keep else h.text + "\n"
                assert h.logprob == pytest.approx(logprob(model, vocab, "ROMEO.", written, False), abs=1e-4)
        assert found[0].ended == "stop"  # the likeliest line is a short one


@pytest.fixture(scope="module")
def two_letters(tmp_path_factory):
    """A model of a three-character alphabet ('a', 'b', newline): few enough continuations to list them all."""
    out = tmp_path_factory.mktemp("ab")
    text = "ab\naab\nba\nabb\nb\naaab\n" * 40
    train([text], dict(cell="lstm", layers=1, hidden=16, embed=4, dropout=0.0), tiny_config(steps=30, batch_size=4),
          out, sample_every_eval=0)
    model, vocab, _ = load_model(out / "best.pt")
    return model, vocab


@pytest.mark.parametrize("prime", ["", "a"])
def test_wide_enough_beams_are_exhaustive_search(two_letters, prime):
    model, vocab = two_letters
    length = 4
    every = []  # every continuation: ended by EOS after 1..length characters, or cut at the length
    for k in range(1, length + 1):
        for chars in itertools.product(vocab.chars, repeat=k):
            text = "".join(chars)
            every.append((logprob(model, vocab, prime, text, True), text, "eos"))
            if k == length:
                every.append((logprob(model, vocab, prime, text, False), text, "length"))
    best = {}
    for lp, text, ended in sorted(every, reverse=True):
        best.setdefault(text, (lp, ended))
    expected = sorted(((lp, text, ended) for text, (lp, ended) in best.items()), reverse=True)[:5]
    found = beam_search(model, vocab, prime, SampleConfig(length=length, beam=len(every), num_samples=5))
    assert [(h.text, h.ended) for h in found] == [(t, e) for _, t, e in expected]
    assert [h.logprob for h in found] == pytest.approx([lp for lp, _, _ in expected], abs=1e-6)


def test_the_cli_prints_the_likeliest_and_its_logprob(trained_run):
    args = ("sample", "-c", trained_run, "--prime", "ROMEO.", "--length", "100", "--json", "-q")
    beam = run(*args, "--beam", "5", cwd=trained_run)
    greedy = run(*args, "--beam", "1", cwd=trained_run)
    assert beam.returncode == greedy.returncode == 0, beam.stderr
    b, g = json.loads(beam.stdout), json.loads(greedy.stdout)
    assert b["text"].startswith("ROMEO.") and b["prime"] == "ROMEO." and b["beam"] == 5
    assert b["logprob"] >= g["logprob"] and math.isfinite(b["logprob"])
    plain = run("sample", "-c", trained_run, "--beam", "3", "-n", "2", "--length", "30", "--prime", "The ", "-q",
                cwd=trained_run)
    assert plain.returncode == 0 and plain.stdout.startswith("The ")


@pytest.mark.parametrize("args, words", [
    (["--beam", "0"], "--beam must be at least 1, got 0"),
    (["--beam", "3", "-t", "0.5"], "--beam finds the likeliest continuations: temperature"),
    (["--beam", "3", "--top-k", "4"], "top-k"),
    (["--beam", "2", "-n", "3"], "--num-samples must be at most the beam width (2)"),
    (["--beam", "3", "--novel"], "--novel does not apply"),
    (["--beam", "3", "--color"], "--color does not apply"),
])
def test_bad_beam_flags_are_one_line_and_exit_2(trained_run, args, words):
    r = run("sample", "-c", trained_run, *args, cwd=trained_run)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr


def test_serve_answers_a_beam_request_with_the_clis_answer(server, model_vocab):
    model, vocab = model_vocab
    status, done = server.post("/v1/sample", {"prime": "ROMEO.", "length": 60, "beam": 4, "n": 2, "stream": False})
    assert status == 200
    found = beam_search(model, vocab, "ROMEO.", SampleConfig(length=60, beam=4, num_samples=2))
    assert [(s["text"], s["ended"]) for s in done["samples"]] == [(h.text, h.ended) for h in found]
    assert [s["logprob"] for s in done["samples"]] == pytest.approx([h.logprob for h in found], abs=1e-5)
    records = [r for _, r in stream(server, {"prime": "ROMEO.", "length": 60, "beam": 4})]
    assert [r["type"] for r in records] == ["start", "text", "end", "done"]
    assert records[1]["text"] == found[0].text


@pytest.mark.parametrize("body, field, words", [
    ({"beam": 0}, "beam", "beam must be an integer from 1 to 64"),
    ({"beam": 65}, "beam", "beam must be an integer from 1 to 64"),
    ({"beam": 2, "temperature": 0.5}, "beam", "beam finds the likeliest continuations"),
    ({"beam": 2, "n": 3}, "n", "n must be at most the beam width (2)"),
    ({"beam": 2, "top": 3}, "top", "beam search does not sample"),
])
def test_bad_beam_requests_are_400s_naming_the_field(server, body, field, words):
    status, answer = server.post("/v1/sample", body)
    assert status == 400 and answer.get("field") == field and words in answer["error"]
