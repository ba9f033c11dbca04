import pytest
import torch

from charrnn.errors import UsageError
from charrnn.text.data import EOS
from charrnn.writing.sample import SampleConfig, Sampler, StopScan, generate, next_ids


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
        primed = list(generate(model, vocab, "KING", SampleConfig(length=50, seed=0)))
        greedy = list(generate(model, vocab, "", SampleConfig(length=50, greedy=True, top_k=3, num_samples=2)))
    finally:
        with torch.no_grad():
            model.head.bias[EOS] -= 1000.0
    # A document is never empty: without a prime the first draw is a character, whatever the mode;
    # after it (or after a prime) EOS ends the sample.
    for evs in (events, greedy):
        assert [i for i, _ in evs] == [0, 1, 0, 1] and evs[0][1] and evs[1][1] and evs[2:] == [(0, None), (1, None)]
    assert primed == [(0, None)]


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


class Scripted:
    """A stand-in for writing.sample.Sampler that draws a fixed list of (sample, character or None) events and says
    why each sample ended as the real one does: at its None event, or at the batch's end ("length")."""

    def __init__(self, events, n, why):
        self.script, self.why, self.ended, self.labels, self.drawn = events, why, {}, None, 0
        self.cfg = SampleConfig(num_samples=n)

    def events(self):
        for event in self.script:
            self.drawn += 1
            if event[1] is None:
                self.ended[event[0]] = self.why[event[0]]
            yield event
        for i in range(self.cfg.num_samples):
            self.ended.setdefault(i, "length")


def test_batched_samples_print_in_order_while_streaming():
    import io

    from charrnn.api.writing import streams_of
    from charrnn.cli.render import write_streams

    out = io.StringIO()
    events = [(0, "a"), (1, "b"), (2, "c"), (0, None), (1, "d"), (2, None), (1, "e")]
    write_streams(streams_of(Scripted(events, 3, {0: "eos", 2: "eos"}), "P", 1), out)
    # 0 ended by EOS (newline), 1 cut at the length limit (blank line), 2 ended by EOS; prime echoed for each.
    assert out.getvalue() == "Pa\nPbde\n\nPc\n"
    out = io.StringIO()
    write_streams(streams_of(Scripted([(0, "x"), (0, "y")], 1, {}), "", 1), out)
    assert out.getvalue() == "xy\n"


def test_a_stream_is_read_as_it_is_drawn_and_the_others_wait_for_their_turn():
    from charrnn.api.writing import streams_of

    events = [(0, "a"), (1, "b"), (0, "c"), (0, None), (1, "d")]
    sampler = Scripted(events, 2, {0: "stop"})
    first, second = streams_of(sampler, "", 7)
    assert next(iter(first)) == "a" and sampler.drawn == 1  # nothing drawn ahead of what is read
    assert first.text() == "c" and first.ended == "stop" and sampler.drawn == 4
    assert second.ended is None and list(second) == ["b", "d"] and second.ended == "length" and second.seed == 7


def _scan(stops, text, keep=False):
    """Feed `text` to a StopScan one character at a time: (what was emitted at each step, stopped, held at the end)."""
    scan, steps = StopScan(tuple(stops), keep), []
    for ch in text:
        out, stopped = scan.feed(ch)
        steps.append("".join(c for c, _ in out))
        if stopped:
            return steps, True, ""
    return steps, False, "".join(c for c, _ in scan.flush())


def test_a_stop_split_across_steps_is_held_back_and_never_emitted():
    steps, stopped, _ = _scan(["\n\n"], "ab\ncd\n\nef")
    assert stopped and "".join(steps) == "ab\ncd"
    assert steps[2] == "" and steps[3] == "\nc"  # the lone newline waits until it cannot start the stop
    steps, stopped, _ = _scan(["END"], "xxENDyy", keep=True)
    assert stopped and "".join(steps) == "xxEND"


def test_stops_that_never_occur_lose_nothing_and_the_earliest_stop_wins():
    steps, stopped, held = _scan(["abc", "zz"], "ababab")
    assert not stopped and "".join(steps) + held == "ababab" and held == "ab"
    steps, stopped, _ = _scan(["bcd", "c"], "abcd")  # 'c' ends first
    assert stopped and "".join(steps) == "ab"
    steps, stopped, _ = _scan(["aab"], "aaab")  # overlapping prefixes
    assert stopped and "".join(steps) == "a"


def test_generate_ends_samples_at_a_stop_and_says_why(model_vocab):
    model, vocab = model_vocab
    cfg = SampleConfig(length=300, seed=7, num_samples=6, stop=("e ",))
    sampler = Sampler(model, vocab, "", cfg)
    texts = [""] * 6
    for i, c in sampler.events():
        texts[i] += c or ""
    assert all("e " not in t for t in texts)
    assert set(sampler.ended) == set(range(6)) and "stop" in sampler.ended.values()
