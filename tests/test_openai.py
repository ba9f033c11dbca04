"""The OpenAI-compatible API of `charrnn serve`, driven through the official `openai` package over loopback:
models, completions whole and streamed, n > 1, a list of prompts, stops, seeds, logprobs, echo, chat, and
BadRequestError naming the field."""

import json
import math
import os
from pathlib import Path

import pytest
from conftest import openai_client
from test_serve import expected

openai = pytest.importorskip("openai", reason="the openai package is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def client(server):
    return openai_client(server)


def test_the_served_model_is_listed_by_its_run_name(client, trained_run):
    assert [m.id for m in client.models.list()] == [trained_run.name]


def test_a_seeded_completion_is_what_charrnn_sample_writes_whole_and_streamed(client, model_vocab):
    # A seed whose sample is long enough to come in several pieces (the tiny model may end a sample at once).
    seed = next(k for k in range(3, 50) if len(expected(model_vocab, "ROMEO:", length=3000, seed=k)[0][0]) > 100)
    whole = client.completions.create(model="anything", prompt="ROMEO:", max_tokens=3000, seed=seed)
    (text,), (ended,) = expected(model_vocab, "ROMEO:", length=3000, seed=seed)
    assert whole.choices[0].text == text and whole.object == "text_completion"
    assert whole.choices[0].finish_reason == ("length" if ended == "length" else "stop")
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (len("ROMEO:"), len(text))
    pieces = list(client.completions.create(model="x", prompt="ROMEO:", max_tokens=3000, seed=seed, stream=True))
    texts = [p.choices[0].text for p in pieces if p.choices]
    assert "".join(texts) == text and len([t for t in texts if t]) > 1  # in pieces
    assert pieces[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_n_a_list_of_prompts_temperature_top_p_and_greedy_match_sample(client, model_vocab):
    r = client.completions.create(model="x", prompt=["ROMEO:", "KING"], n=2, max_tokens=40, seed=5, temperature=0.8,
                                  top_p=0.9)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    for k, prompt in enumerate(["ROMEO:", "KING"]):
        texts, _ = expected(model_vocab, prompt, length=40, seed=5, temperature=0.8, top_p=0.9, num_samples=2)
        assert [c.text for c in r.choices[2 * k : 2 * k + 2]] == texts
    greedy = client.completions.create(model="x", prompt="ROMEO:", max_tokens=30, temperature=0)
    assert greedy.choices[0].text == expected(model_vocab, "ROMEO:", length=30, greedy=True)[0][0]


def test_stop_sequences_end_a_choice_before_them(client, model_vocab):
    r = client.completions.create(model="x", prompt="ROMEO:", max_tokens=200, seed=4, stop=["e", "\n\n"])
    texts, ended = expected(model_vocab, "ROMEO:", length=200, seed=4, stop=("e", "\n\n"))
    assert r.choices[0].text == texts[0] and "e" not in texts[0]
    assert r.choices[0].finish_reason == ("length" if ended[0] == "length" else "stop")


def test_logprobs_give_each_characters_and_the_top_alternatives(client):
    r = client.completions.create(model="x", prompt="ROMEO:", max_tokens=20, seed=2, logprobs=3, echo=True)
    choice = r.choices[0]
    lp = choice.logprobs
    assert choice.text.startswith("ROMEO:") and "".join(lp.tokens) == choice.text[len("ROMEO:"):]
    assert lp.text_offset[0] == len("ROMEO:") and len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs)
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert len(top) == 3 and logprob <= max(top.values()) + 1e-6 and logprob <= 0
        assert token not in top or math.isclose(top[token], logprob, abs_tol=1e-4)
    streamed = [c.choices[0].logprobs for c in client.completions.create(model="x", prompt="ROMEO:", max_tokens=20, seed=2,
                                                                          logprobs=3, echo=True, stream=True)
                if c.choices and c.choices[0].logprobs]
    assert sum((s.tokens for s in streamed), []) == lp.tokens  # each piece its own, offsets running on
    assert sum((s.text_offset for s in streamed), []) == lp.text_offset
    assert sum((s.token_logprobs for s in streamed), []) == pytest.approx(lp.token_logprobs)


def test_chat_continues_the_messages_text_whole_and_streamed(client, model_vocab):
    messages = [{"role": "system", "content": "ROMEO:"}, {"role": "user", "content": "What light"}]
    r = client.chat.completions.create(model="x", messages=messages, max_tokens=60, seed=7)
    text = expected(model_vocab, "ROMEO:\nWhat light", length=60, seed=7)[0][0]
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == text
    chunks = list(client.chat.completions.create(model="x", messages=messages, max_tokens=60, seed=7, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    lp = client.chat.completions.create(model="x", messages=messages, max_tokens=5, seed=7, logprobs=True, top_logprobs=2)
    assert [t.token for t in lp.choices[0].logprobs.content] == list(text[:5])


@pytest.mark.parametrize("kwargs, param", [({"temperature": 5}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
                                           ({"n": 0}, "n"), ({"prompt": "ROMEO€"}, "prompt"),
                                           ({"frequency_penalty": 1.0}, "frequency_penalty"),
                                           ({"extra_body": {"best_of": 3}}, "best_of")])
def test_bad_fields_are_bad_request_errors_naming_them(client, kwargs, param):
    args = {"model": "x", "prompt": "ROMEO:", "max_tokens": 5, **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**args)
    error = caught.value.body
    assert caught.value.status_code == 400 and error["param"] == param and error["type"] == "invalid_request_error"
    if param == "prompt":
        assert "'€'" in error["message"]


def test_the_raw_stream_ends_with_done(server):
    import http.client

    conn = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
    conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "ROMEO:", "max_tokens": 10, "stream": True}),
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    events = [line for line in resp.read().decode().split("\n\n") if line]
    assert resp.getheader("content-type").startswith("text/event-stream")
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_the_llm_cli_writes_with_charrnn_as_an_openai_completion_model(server, trained_run, model_vocab, tmp_path):
    # Simon Willison's llm, configured as its docs say for an OpenAI-compatible completion model.
    import shutil
    import subprocess
    import sys

    llm = shutil.which("llm", path=str(Path(sys.executable).parent)) or shutil.which("llm")
    if llm is None:
        pytest.skip("the llm CLI is not installed (pip install -e '.[dev]')")
    (tmp_path / "extra-openai-models.yaml").write_text(
        f'- model_id: charrnn\n  model_name: {trained_run.name}\n  api_base: "{server.url}v1"\n  completion: true\n')
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    text = expected(model_vocab, "ROMEO:", length=60, seed=1)[0][0]
    for extra in ([], ["--no-stream"]):
        r = subprocess.run([llm, "-m", "charrnn", "ROMEO:", "-o", "max_tokens", "60", "-o", "seed", "1", "--no-log", *extra],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout == text + "\n"
