"""Writing only what fits (--regex, --allow, --ban): the automaton agrees with Python's re, every sample matches,
the draw among what is allowed is the model's renormalised, beam search finds matches, the server and the OpenAI
client take the constraints, and what cannot be met is refused in one line before anything is drawn."""

import json
import math
import re

import pytest
import torch
from conftest import openai_client
from hypothesis import given, settings
from hypothesis import strategies as st
from inprocess import invoke
from test_serve import engine_jobs, expected

import charrnn
from charrnn.api.loading import load_model
from charrnn.text.data import EOS
from charrnn.writing.config import SampleConfig
from charrnn.writing.constraint import DEAD, compile_automaton
from charrnn.writing.sample import start

CHARS = tuple("\nabcxyz ")
INDEX = {c: i + 1 for i, c in enumerate(CHARS)}


def run(automaton, text: str, prime: str = "") -> int:
    state = automaton.start(prime)
    for c in text:
        state = int(automaton.next[state, INDEX[c]])
    return state


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["a[bc]{1,3}x?", "(ab|c)*z", "[a-c]+ [x-z]+", "a.c", "(?i)AB+", "x|y|(abc)+", "a{2}b*"]),
       st.text(alphabet="abcxyz \n", max_size=8))
def test_the_automaton_accepts_what_re_fullmatch_does(pattern, text):
    automaton = compile_automaton(pattern, None, (), CHARS)
    state = run(automaton, text)
    assert bool(automaton.accepting[state]) == (re.fullmatch(pattern, text) is not None)
    # A live state can still be completed: its `left` characters away.
    assert state == DEAD or automaton.left[state] < 10


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=3),
       st.text(alphabet="abc", max_size=4), st.text(alphabet="abc", max_size=8))
def test_a_banned_string_never_completes_counting_across_the_primes_end(bans, prime, text):
    automaton = compile_automaton(None, None, tuple(bans), CHARS)
    state = automaton.start(prime)
    dead_at = None
    for k, c in enumerate(text):
        state = int(automaton.next[state, INDEX[c]])
        if state == DEAD:
            dead_at = k
            break
    # Dead exactly when some banned string ends in the new text (it may begin in the prime).
    whole = prime + text
    first = next((k for k in range(len(text)) if any(whole[: len(prime) + k + 1].endswith(b) for b in bans)), None)
    assert dead_at == first


def test_allow_keeps_a_class_and_combines_with_the_rest():
    automaton = compile_automaton("[a-z]+", "abc", ("ca",), CHARS)
    assert run(automaton, "abcbb") != DEAD and run(automaton, "abx") == DEAD and run(automaton, "aca") == DEAD


@pytest.mark.parametrize("flags, message", [
    (["--regex", "(a"], "--regex '(a' does not compile"),
    (["--regex", r"(a)\1"], "uses backreferences"),
    (["--regex", "(?=a)b"], "uses lookaround"),
    (["--regex", r"a\bb"], "word boundaries"),
    (["--regex", "é+"], "needs characters the model never saw: 'é' (U+00E9)"),
    (["--regex", "[0-9]+"], "no text of the model's characters matches it"),
    (["--regex", "a{80}", "--length", "20"], "fits in --length 20: the shortest is 80 characters"),
    (["--regex", "(a|b)*a(a|b){40}"], "too large to build"),
    (["--allow", "0-9"], "--allow '0-9' keeps none of the model's characters"),
    (["--ban", ""], "--ban must not be empty"),
    (["--regex", "a{0}"], "matches no text of 1 to"),
])
def test_constraints_that_cannot_be_met_are_refused_before_anything_is_drawn(names_run, flags, message):
    r = invoke("sample", "-c", "names", *flags, "-n", "3", cwd=names_run)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""


def test_every_sample_matches_and_most_are_distinct(names_run):
    r = invoke("sample", "-c", "names", "--regex", "ka[a-z]{3,6}", "-n", "200", "--seed", "1", cwd=names_run)
    names = r.stdout.splitlines()
    assert r.returncode == 0 and len(names) == 200, r.stderr
    assert all(re.fullmatch("ka[a-z]{3,6}", n) for n in names), [n for n in names if not re.fullmatch("ka[a-z]{3,6}", n)]
    assert len(set(names)) >= 180


def test_ban_and_allow_on_names(names_run):
    banned = invoke("sample", "-c", "names", "--ban", "ar", "-n", "200", "--seed", "2", cwd=names_run).stdout.splitlines()
    assert len(banned) == 200 and not [n for n in banned if "ar" in n]
    allowed = invoke("sample", "-c", "names", "--allow", "a-e", "-n", "50", "--seed", "3", cwd=names_run).stdout
    assert set(allowed) <= set("abcde\n") and len(allowed.split()) == 50
    across = invoke("sample", "-c", "names", "--prime", "ma", "--ban", "ary", "--ban", "rk", "-n", "100", "--seed", "4",
                    cwd=names_run).stdout.splitlines()
    assert len(across) == 100 and not [n for n in across if "ary" in n or "rk" in n]


def test_json_says_a_sample_ended_because_the_pattern_allowed_no_more(names_run):
    r = invoke("sample", "-c", "names", "--regex", "ka[a-z]{2}", "-n", "20", "--seed", "5", "--json", cwd=names_run)
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert all(re.fullmatch("ka[a-z]{2}", rec["text"]) for rec in records)
    assert {rec["ended"] for rec in records} <= {"match", "eos"} and "match" in {rec["ended"] for rec in records}
    cut = invoke("sample", "-c", "names", "--regex", "ka[a-z]{2,9}", "-n", "20", "--seed", "5", "--length", "5",
                 "--json", cwd=names_run)
    assert all(re.fullmatch("ka[a-z]{2,3}", json.loads(line)["text"]) for line in cut.stdout.splitlines())


def test_the_constrained_draw_is_the_models_renormalised(names_run):
    # 2,000 first characters drawn under --allow against the model's probabilities over the allowed ones: chi-square.
    model, vocab, _ = load_model(names_run / "names" / "best.pt")
    allowed = "aeiou"
    cfg = SampleConfig(length=1, num_samples=2000, seed=11, allow=allowed)
    texts, _ = expected((model, vocab), **cfg.__dict__)
    counts = torch.tensor([sum(t == c for t in texts) for c in allowed], dtype=torch.float64)
    with torch.inference_mode():
        logits, _, _ = start(model, vocab, "", 1, torch.device("cpu"))
    probs = torch.softmax(logits[0].double(), 0)[[vocab.chars.index(c) + 1 for c in allowed]]

    def p_value(expected_probs):
        exp = expected_probs / expected_probs.sum() * counts.sum()
        chi2 = float(((counts - exp) ** 2 / exp).sum())
        return float(torch.special.gammaincc(torch.tensor((len(allowed) - 1) / 2), torch.tensor(chi2 / 2)))

    assert counts.sum() == 2000 and p_value(probs) > 0.001
    assert p_value(torch.ones(len(allowed), dtype=torch.float64)) < 1e-6  # the test can tell a biased draw


def test_beam_search_finds_a_match_at_least_as_likely_as_greedys(names_run):
    model = charrnn.load(names_run / "names", device="cpu")
    beams = model.samples(n=3, beam=4, regex="ka[a-z]{3,6}", length=12)
    greedy = model.samples(beam=1, regex="ka[a-z]{3,6}", length=12)[0]
    assert all(re.fullmatch("ka[a-z]{3,6}", s.text) for s in [*beams, greedy])
    assert beams[0].logprob >= greedy.logprob and beams[0].logprob >= beams[1].logprob >= beams[2].logprob
    assert model.generate(greedy=True, regex="ka[a-z]{3,6}", length=12) == greedy.text


def test_a_stop_ends_a_sample_only_where_what_it_leaves_matches(names_run):
    model = charrnn.load(names_run / "names", device="cpu")
    for s in model.samples(n=40, regex="[a-z]{2}e[a-z]*", stop="e", length=12, seed=6):
        assert re.fullmatch("[a-z]{2}e[a-z]*", s.text), s
        if s.ended == "stop":
            assert not s.text.endswith("e")


def test_constraints_through_the_api_labels_adapt_and_filters(names_run):
    model = charrnn.load(names_run / "names", device="cpu")
    text = model.generate("ma", regex="[a-z]{4}", seed=1)
    assert re.fullmatch("[a-z]{4}", text)
    new = model.samples(n=10, regex="j[a-z]{2,5}", unique=True, novel=True, seed=2)
    assert len({s.text for s in new}) == 10 and all(re.fullmatch("j[a-z]{2,5}", s.text) for s in new)
    adapted = model.samples("annabellannalenna", n=5, adapt=True, regex="[a-z]+n[a-z]+", seed=3, length=10)
    assert all(re.fullmatch("[a-z]+n[a-z]+", s.text) for s in adapted)
    with pytest.raises(charrnn.CharrnnError, match="needs characters the model never saw"):
        model.generate(regex="\u20acz")


def test_the_server_samples_what_the_cli_samples_under_a_constraint(server, model_vocab):
    body = {"prime": "ROMEO:", "length": 60, "n": 2, "seed": 7, "regex": "[A-Za-z ,.\n]+", "ban": ["the"],
            "stream": False}
    status, done = server.post("/v1/sample", body)
    assert status == 200, done
    texts, ended = expected(model_vocab, "ROMEO:", length=60, num_samples=2, seed=7, regex="[A-Za-z ,.\n]+",
                            ban=("the",))
    assert [s["text"] for s in done["samples"]] == texts and [s["ended"] for s in done["samples"]] == ended
    assert all(re.fullmatch("[A-Za-z ,.\n]+", t) and "the" not in "ROMEO:" + t for t in texts)


@pytest.mark.parametrize("body, field", [({"regex": "(a"}, "regex"), ({"regex": "\u20ac+"}, "regex"),
                                         ({"allow": "\u20ac"}, "allow"), ({"ban": [""]}, "ban"), ({"regex": 3}, "regex")])
def test_bad_constraints_are_a_400_naming_the_field(server, body, field):
    status, answer = server.post("/v1/sample", {"length": 20, **body})
    assert status == 400 and answer["field"] == field and "\n" not in answer["error"], answer


def test_the_engine_keeps_each_requests_constraint_in_a_shared_batch(names_run):
    model, vocab, _ = load_model(names_run / "names" / "best.pt")
    cfgs = [SampleConfig(length=12, num_samples=5, seed=k, **rule) for k, rule in
            enumerate([{}, {"regex": "ka[a-z]{2,5}"}, {"allow": "a-e"}, {"ban": ("an",)}, {"regex": "j[a-z]+", "stop": ("e",)}])]

    for job, cfg in zip(engine_jobs(model, vocab, cfgs), cfgs, strict=True):
        texts = ["".join(t) for t in job.texts]
        assert (texts, [job.ended[i] for i in range(5)]) == expected((model, vocab), **cfg.__dict__)


def test_the_openai_client_sends_regex_in_extra_body(server):
    openai = pytest.importorskip("openai")
    client = openai_client(server)
    r = client.completions.create(model="x", prompt="ROMEO:", max_tokens=40, n=3, seed=2,
                                  extra_body={"regex": "[A-Z][a-z]+( [a-z]+)*\\."})
    assert all(re.fullmatch("[A-Z][a-z]+( [a-z]+)*\\.", c.text) for c in r.choices), [c.text for c in r.choices]
    guided = client.completions.create(model="x", prompt="ROMEO:", max_tokens=40, n=3, seed=2,
                                       extra_body={"guided_regex": "[A-Z][a-z]+( [a-z]+)*\\."})
    assert [c.text for c in guided.choices] == [c.text for c in r.choices]
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model="x", prompt="ROMEO:", max_tokens=10, extra_body={"regex": "(a"})
    assert raised.value.body["param"] == "regex" and "does not compile" in raised.value.body["message"]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "ROMEO:"}], max_tokens=10,
                                       extra_body={"guided_regex": "\u20ac"})
    assert raised.value.body["param"] == "guided_regex"


def test_compiling_is_cached_and_the_step_is_a_gather():
    # The table is made once per constraint and vocabulary; each step reads rows of it (no loop over the vocabulary).
    from charrnn.writing.constraint import Constraint

    first = compile_automaton("[a-c]+x", None, ("cc",), CHARS)
    assert compile_automaton("[a-c]+x", None, ("cc",), CHARS) is first
    c = Constraint(first, "", torch.device("cpu"), CHARS)
    states = torch.tensor([c.start, c.start])
    mask = c.mask(states, remaining=5)
    assert mask.shape == (2, len(CHARS) + 1) and math.isinf(mask[0, EOS]) and mask[0, INDEX["a"]] == 0
    assert math.isinf(mask[0, INDEX["x"]])  # x needs a letter before it
    after = c.advance(states, torch.tensor([INDEX["a"], INDEX["c"]]))
    assert c.mask(after, remaining=1)[:, INDEX["x"]].eq(0).all() and c.mask(after, remaining=1)[:, INDEX["a"]].isinf().all()
