import pytest
import torch

from charrnn.data import EOS
from charrnn.errors import UsageError
from charrnn.sample import SampleConfig, generate, next_ids


def text_of(events, n=1):
    out = [[] for _ in range(n)]
    for i, ch in events:
        if ch is not None:
            out[i].append(ch)
    return ["".join(o) for o in out]


def test_seeded_sampling_is_reproducible(model_vocab):
    model, vocab = model_vocab
    cfg = SampleConfig(length=200, temperature=1.0, seed=42, num_samples=3)
    a = text_of(generate(model, vocab, "ROMEO:", cfg), 3)
    b = text_of(generate(model, vocab, "ROMEO:", cfg), 3)
    c = text_of(generate(model, vocab, "ROMEO:", SampleConfig(length=200, seed=43, num_samples=3)), 3)
    assert a == b
    assert a != c
    assert all(set(s) <= set(vocab.chars) for s in a)


def test_greedy_is_deterministic_and_equals_top_k_1(model_vocab):
    model, vocab = model_vocab
    g1 = text_of(generate(model, vocab, "The ", SampleConfig(length=100, greedy=True, seed=1)))
    g2 = text_of(generate(model, vocab, "The ", SampleConfig(length=100, greedy=True, seed=2)))
    k1 = text_of(generate(model, vocab, "The ", SampleConfig(length=100, top_k=1, seed=3)))
    assert g1 == g2 == k1


def test_batch_members_match_single_runs_under_greedy(model_vocab):
    model, vocab = model_vocab
    one = text_of(generate(model, vocab, "KING", SampleConfig(length=80, greedy=True)))
    four = text_of(generate(model, vocab, "KING", SampleConfig(length=80, greedy=True, num_samples=4)), 4)
    assert four == one * 4


def test_eos_stops_a_sample(model_vocab):
    model, vocab = model_vocab
    with torch.no_grad():
        model.head.bias[EOS] += 1000.0  # the model now always ends the document
    try:
        events = list(generate(model, vocab, "", SampleConfig(length=50, seed=0, num_samples=2)))
    finally:
        with torch.no_grad():
            model.head.bias[EOS] -= 1000.0
    assert events == [(0, None), (1, None)]


def test_length_counts_new_characters_only(model_vocab):
    model, vocab = model_vocab
    (s,) = text_of(generate(model, vocab, "ROMEO:", SampleConfig(length=37, seed=5, top_k=3)))
    assert len(s) <= 37
    with torch.no_grad():
        model.head.bias[EOS] -= 1000.0  # never end: exactly `length` characters
    try:
        (s,) = text_of(generate(model, vocab, "ROMEO:", SampleConfig(length=37, seed=5)))
    finally:
        with torch.no_grad():
            model.head.bias[EOS] += 1000.0
    assert len(s) == 37


def test_top_p_and_top_k_filter():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    draws = {int(next_ids(logits, SampleConfig(top_p=0.7), gen)) for _ in range(300)}
    assert draws == {0, 1}
    draws = {int(next_ids(logits, SampleConfig(top_k=3), gen)) for _ in range(300)}
    assert draws == {0, 1, 2}
    draws = {int(next_ids(logits, SampleConfig(top_p=0.1), gen)) for _ in range(50)}
    assert draws == {0}


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_draws_follow_the_tempered_distribution(temperature):
    probs = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03, 0.0])
    logits = torch.log(probs).expand(40_000, -1)
    gen = torch.Generator().manual_seed(3)
    counts = torch.bincount(next_ids(logits, SampleConfig(temperature=temperature), gen), minlength=6).double()
    expected = probs.double() ** (1 / temperature)
    expected = expected / expected.sum() * 40_000
    assert counts[5] == 0  # probability 0 is never drawn
    # Each count within 5 standard deviations of its binomial expectation.
    sd = (expected * (1 - expected / 40_000)).sqrt()
    assert ((counts[:5] - expected[:5]).abs() <= 5 * sd[:5] + 1).all(), (counts, expected)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(temperature=0), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_p=0.0), "top-p"),
        (dict(top_p=1.5), "top-p"),
        (dict(length=0), "length"),
        (dict(num_samples=0), "num-samples"),
        (dict(top_k=0), "top-k"),
    ],
)
def test_bad_sampling_options(kw, msg):
    with pytest.raises(UsageError, match=msg):
        SampleConfig(**kw).validate()


def test_prime_with_unknown_characters(model_vocab):
    model, vocab = model_vocab
    with pytest.raises(UsageError, match=r"'€' \(U\+20AC\)"):
        list(generate(model, vocab, "price: 5€", SampleConfig(length=5)))


def test_batched_samples_print_in_order_while_streaming():
    import io

    from charrnn.render import write_samples

    out = io.StringIO()
    events = [(0, "a"), (1, "b"), (2, "c"), (0, None), (1, "d"), (2, None), (1, "e")]
    write_samples(iter(events), "P", 3, out)
    # 0 ended by EOS (newline), 1 cut at the length limit (blank line), 2 ended by EOS; prime echoed for each.
    assert out.getvalue() == "Pa\nPbde\n\nPc\n"
    out = io.StringIO()
    write_samples(iter([(0, "x"), (0, "y")]), "", 1, out)
    assert out.getvalue() == "xy\n"
