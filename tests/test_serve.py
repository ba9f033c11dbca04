"""charrnn serve over real HTTP on loopback: streaming, seeds, concurrent clients, bad requests, disconnects."""

import http.client
import json
import math
import socket
import subprocess
import sys
import threading
import time

import pytest

from charrnn.scoring.evaluation import score_documents
from charrnn.training.describe import describe
from charrnn.writing.config import SampleConfig
from charrnn.writing.sample import Sampler


def expected(model_vocab, prime="", **kw):
    """What `charrnn sample` makes with these settings: (texts, ended)."""
    model, vocab = model_vocab
    cfg = SampleConfig(**kw)
    sampler = Sampler(model, vocab, prime, cfg)
    texts = [""] * cfg.num_samples
    for i, ch in sampler.events():
        if ch is not None:
            texts[i] += ch
    return texts, [sampler.ended[i] for i in range(cfg.num_samples)]


def stream(server, body, headers=None):
    """Send a sample request; yield (seconds since sent, record) per JSON line as it arrives."""
    conn = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
    sent = time.perf_counter()
    conn.request("POST", "/v1/sample", body=json.dumps(body), headers=headers or {})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    lines = []
    try:
        for line in resp:
            lines.append(line)
            yield time.perf_counter() - sent, json.loads(line)
    finally:
        conn.close()
    server.contract.check("POST", "/v1/sample", resp.status, resp.getheader("content-type"), b"".join(lines))


def test_listens_on_loopback_by_default(server):
    assert server.host == "127.0.0.1"


def test_the_text_streams_in_as_it_is_made(server):
    arrivals = list(stream(server, {"length": 30_000, "seed": 5}))
    kinds = [r["type"] for _, r in arrivals]
    assert kinds[0] == "start" and kinds[-1] == "done" and arrivals[0][1]["seed"] == 5
    texts = [(t, r["text"]) for t, r in arrivals if r["type"] == "text"]
    assert len(texts) >= 3, "the sample came in one piece, not as it was made"
    # The first characters arrive long before the last: they were sent while the rest was being made.
    assert texts[0][0] < 0.5 * arrivals[-1][0]
    done = arrivals[-1][1]
    assert "".join(t for _, t in texts) == done["samples"][0]["text"]
    assert done["characters"] == len(done["samples"][0]["text"])


@pytest.mark.parametrize("settings", [
    dict(prime="ROMEO.", length=150, seed=3),
    dict(length=120, seed=4, temperature=0.7, top_p=0.9, num_samples=2),
    dict(prime="The ", length=200, seed=5, top_k=5, stop=(" the ",)),
    dict(length=80, greedy=True, seed=6),
])
def test_a_seeded_request_gives_what_charrnn_sample_gives(server, model_vocab, settings):
    body = {("n" if k == "num_samples" else k): (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
    status, done = server.post("/v1/sample", {**body, "stream": False})
    assert status == 200
    texts, ended = expected(model_vocab, **settings)
    assert [s["text"] for s in done["samples"]] == texts
    assert [s["ended"] for s in done["samples"]] == ended
    assert done["seed"] == settings["seed"]


def test_the_seed_is_chosen_and_reported_when_not_given(server, model_vocab):
    _, a = server.post("/v1/sample", {"length": 60, "stream": False})
    assert isinstance(a["seed"], int)
    assert [s["text"] for s in a["samples"]] == expected(model_vocab, length=60, seed=a["seed"])[0]


def test_concurrent_clients_each_get_their_own_seeded_text(server, model_vocab):
    # Ten clients at once, more samples than the server's batch of 6: some wait their turn, none is mixed.
    asks = [dict(length=200 + 20 * k, seed=100 + k, num_samples=1 + k % 2, temperature=0.6 + 0.1 * (k % 5),
                 **({"prime": "KING"} if k % 3 == 0 else {}), **({"stop": ("\n\n",)} if k % 4 == 1 else {}))
            for k in range(10)]
    results = [None] * len(asks)

    def client(k):
        body = {("n" if key == "num_samples" else key): (list(v) if isinstance(v, tuple) else v)
                for key, v in asks[k].items()}
        results[k] = [r for _, r in stream(server, body)]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(asks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for k, records in enumerate(results):
        texts, ended = expected(model_vocab, **asks[k])
        done = records[-1]
        assert [s["text"] for s in done["samples"]] == texts, f"client {k} got another client's text"
        assert [s["ended"] for s in done["samples"]] == ended
        streamed = [""] * len(texts)
        for r in records:
            if r["type"] == "text":
                streamed[r["i"]] += r["text"]
        assert streamed == texts


@pytest.mark.parametrize("stream", [True, False])
def test_disconnecting_stops_the_generation(server, stream):
    conn = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
    # Greedy: this model never ends these samples itself, so only the disconnect can.
    conn.request("POST", "/v1/sample", body=json.dumps({"prime": "ROMEO.", "length": 1_000_000, "n": 3, "greedy": True,
                                                        "stream": stream}))
    if stream:
        resp = conn.getresponse()
        while json.loads(resp.readline())["type"] != "text":
            pass
    else:  # nothing comes back until the end: wait until the samples are being made
        deadline = time.time() + 10
        while not server.get("/v1/info")["load"]["active_samples"] and time.time() < deadline:
            time.sleep(0.02)
    assert server.get("/v1/info")["load"]["active_samples"] == 3
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.time() + 10
    while server.get("/v1/info")["load"]["active_samples"] and time.time() < deadline:
        time.sleep(0.05)
    load = server.get("/v1/info")["load"]
    assert load["active_samples"] == 0, "the server kept generating for a client that left"
    made = load["characters_made"]
    time.sleep(0.3)
    assert server.get("/v1/info")["load"]["characters_made"] == made


def test_server_sent_events_on_request(server):
    conn = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
    conn.request("POST", "/v1/sample", body=json.dumps({"length": 40, "seed": 1}), headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    assert resp.getheader("content-type").startswith("text/event-stream")
    blocks = [b for b in resp.read().decode().split("\n\n") if b]
    events = [b.split("\n")[0] for b in blocks]
    assert events[0] == "event: start" and events[-1] == "event: done" and "event: text" in events
    assert json.loads(blocks[-1].split("data: ", 1)[1])["seed"] == 1


def test_probabilities_and_alternatives_when_asked(server, model_vocab):
    records = [r for _, r in stream(server, {"prime": "ROMEO.", "length": 50, "seed": 2, "top": 5})]
    text, probs, tops = "", [], []
    for r in records:
        if r["type"] == "text":
            text, probs, tops = text + r["text"], probs + r["p"], tops + r["top"]
    assert len(text) == len(probs) == len(tops) == 50
    model, vocab = model_vocab
    for ch, p, top in zip(text, probs, tops, strict=True):
        assert len(top) == 5 and 0 < p <= 1
        assert [q for _, q in top] == sorted((q for _, q in top), reverse=True)
        assert p <= top[0][1] + 1e-6  # the drawn character is no likelier than the likeliest
        if ch in [c for c, _ in top]:
            assert math.isclose(dict(top)[ch], p, abs_tol=1e-5)


@pytest.mark.parametrize("body, status, field, words", [
    ({"length": 0}, 400, "length", "length must be at least 1"),
    ({"length": "5"}, 400, "length", "length must be an integer"),
    ({"temperature": 0}, 400, "temperature", "temperature must be a number > 0"),
    ({"top_p": 1.5}, 400, "top_p", "top_p must be in (0, 1]"),
    ({"top_k": 0}, 400, "top_k", "top_k must be at least 1"),
    ({"n": 7}, 400, "n", "n must be at most 6"),
    ({"n": True}, 400, "n", "n must be an integer"),
    ({"seed": -1}, 400, "seed", "seed must be an integer from 0"),
    ({"stop": ""}, 400, "stop", "stop must not be empty"),
    ({"stop": [1]}, 400, "stop", "stop must be a string or a list of strings"),
    ({"prime": "ROMEO\u00e9\u03a9"}, 400, "prime", "'é' (U+00E9), 'Ω' (U+03A9)"),
    ({"temprature": 1}, 400, "temprature", "unknown field 'temprature'"),
    ({"length": 2_000_000}, 400, "length", "length must be at most 1,000,000"),
    ({"prime": "a" * 100_001}, 400, "prime", "prime must be at most 100,000 characters"),
    ("[1, 2]", 400, None, "must be a JSON object"),
    ("{bad json", 400, None, "the body is not JSON"),
])
def test_bad_requests_are_400s_naming_the_field(server, body, status, field, words):
    got, answer = server.post("/v1/sample", body)
    assert got == status
    assert set(answer) <= {"error", "field"} and "\n" not in answer["error"]
    assert words in answer["error"]
    assert answer.get("field") == field


def test_unknown_prime_characters_can_be_skipped(server, model_vocab):
    status, done = server.post("/v1/sample", {"prime": "RO\u00e9MEO.", "skip_unknown": True, "length": 30, "seed": 1,
                                              "stream": False})
    assert status == 200 and done["prime"] == "ROMEO."
    assert done["samples"][0]["text"] == expected(model_vocab, "ROMEO.", length=30, seed=1)[0][0]


def test_wrong_routes_and_methods_are_json_errors(server):
    assert server.post("/v1/nothing", {})[0] == 404
    status, answer = server.post("/v1/info", {})
    assert status == 405 and "takes GET" in answer["error"]


def test_score_gives_what_charrnn_score_gives(server, model_vocab):
    texts = ["ROMEO.", "Good morrow, cousin.", "caf\u00e9"]
    status, answer = server.post("/v1/score", {"texts": texts})
    assert status == 200
    scores = answer["scores"]
    model, vocab = model_vocab
    losses = score_documents(model, vocab, texts)
    for s, text, loss in zip(scores, texts, losses, strict=True):
        assert s["text"] == text
        assert (s["bpc"] is None) == (loss is None)
        if loss is not None:
            assert math.isclose(s["bpc"], loss.bpc, abs_tol=1e-4)
    assert scores[2]["unknown"] == ["\u00e9"]
    assert server.post("/v1/score", {"texts": []}) == (400, {"error": "texts must be a non-empty list of strings, got []",
                                                              "field": "texts"})
    assert server.post("/v1/score", {})[1]["field"] == "texts"


def test_info_says_what_charrnn_info_says(server, trained_run):
    from charrnn.model.checkpoint import load_checkpoint

    info = server.get("/v1/info")
    assert info["summary"] == dict(describe(load_checkpoint(trained_run / "best.pt")))
    assert info["limits"]["max_n"] == 6 and info["vocab"] and info["model"]["hidden"] == 64


def test_the_page_needs_nothing_from_outside(server):
    page = server.get("/")
    assert "<title>charrnn" in page and "/v1/sample" in page
    for outside in ("src=\"http", "href=\"http", "@import", "url(http", "src='http"):
        assert outside not in page


def test_a_busy_port_is_one_line_and_exit_2(trained_run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "charrnn", "serve", "-c", str(trained_run / "best.pt"), "--port",
                            str(port)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "choose another --port" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_every_sampling_setting_is_offered_over_http():
    # A new SampleConfig setting (a flag of charrnn sample) must also be a field of POST /v1/sample.
    from charrnn.serve import native_api as api

    offered = {api.CONFIG_NAMES.get(k, k) for k in api.SAMPLE_FIELDS}
    assert set(SampleConfig.__dataclass_fields__) <= offered


def engine_jobs(model, vocab, cfgs: list[SampleConfig], prime: str = "") -> list:
    """The engine itself, without HTTP: a primeless job per config submitted at once to one batch, run to their ends."""
    import asyncio

    from charrnn.serve.engine import Engine, Job

    async def serve_all():
        engine = Engine(model, vocab, "cpu", max_batch=64)
        task = asyncio.create_task(engine.run())
        jobs = [Job(prime, cfg) for cfg in cfgs]
        for job in jobs:
            engine.submit(job)
        for job in jobs:
            async for _ in job.updates():
                pass
        task.cancel()
        return jobs

    return asyncio.run(serve_all())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_served_documents_are_never_empty_and_match_the_cli(names_run, seed):
    # The engine itself, without HTTP: 200 names from a line model as 20 primeless requests sharing
    # the batch under four draw rules; each request's names equal charrnn sample's for its seed.
    from charrnn.api.loading import load_model

    model, vocab, _ = load_model(names_run / "names" / "best.pt")
    rules = [{}, {"greedy": True}, {"top_p": 0.5}, {"temperature": 1.5}]
    cfgs = [SampleConfig(length=40, num_samples=10, seed=seed * 100 + k, **rules[k % 4]) for k in range(20)]
    for job, cfg in zip(engine_jobs(model, vocab, cfgs), cfgs, strict=True):
        texts = ["".join(t) for t in job.texts]
        assert all(t.strip() for t in texts), texts
        assert (texts, [job.ended[i] for i in range(10)]) == expected((model, vocab), **cfg.__dict__)


def test_serve_without_its_extra_says_how_to_install(monkeypatch):
    import importlib.util

    from charrnn.errors import UsageError
    from charrnn.serve import server

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "uvicorn" else object())
    with pytest.raises(UsageError, match=r"charrnn serve needs uvicorn: pip install 'charrnn\[serve\]'"):
        server.check_installed()


def test_ctrl_c_ends_streams_in_flight_with_a_last_line(trained_run):
    import signal

    from conftest import Server

    s = Server(trained_run / "best.pt", "--threads", "1")
    conn = http.client.HTTPConnection(s.host, int(s.port), timeout=60)
    # Greedy, which this model never ends by itself: a random sample could draw EOS before the signal (it did once).
    conn.request("POST", "/v1/sample", body=json.dumps({"prime": "ROMEO.", "length": 1_000_000, "greedy": True}))
    resp = conn.getresponse()
    assert json.loads(resp.readline())["type"] == "start"
    s.proc.send_signal(signal.SIGINT)
    last = [json.loads(line) for line in resp][-1]
    assert last == {"type": "error", "error": "the server is shutting down"}
    assert s.proc.wait(timeout=30) == 130
    err = s.proc.stderr.read()
    assert "Traceback" not in err and "ERROR" not in err, err


def test_one_request_may_not_ask_for_more_than_ten_million_characters(model_vocab):
    from charrnn.serve import native_api as api

    body = json.dumps({"n": 11, "length": 1_000_000}).encode()
    with pytest.raises(api.RequestError, match="n x length must be at most 10,000,000, got 11,000,000") as e:
        api.sample_request(body, model_vocab[1], 256, lambda seed: 1)
    assert e.value.field == "length" and e.value.status == 400
    assert api.sample_request(json.dumps({"n": 10, "length": 1_000_000}).encode(), model_vocab[1], 256,
                              lambda seed: 7).cfg.seed == 7


def test_web_pages_from_an_allowed_origin_may_call_the_api(server):
    def ask(method, origin, extra=None):
        conn = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
        conn.request(method, "/v1/sample", body=None if method == "OPTIONS" else json.dumps({"length": 5, "seed": 1}),
                     headers={"Origin": origin, **(extra or {})})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status, resp.getheader("access-control-allow-origin")

    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    assert ask("OPTIONS", "http://localhost:3000", preflight) == (200, "http://localhost:3000")
    assert ask("POST", "http://localhost:3000") == (200, "http://localhost:3000")
    assert ask("POST", "http://evil.example")[1] is None  # the browser keeps the answer from that page


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port must be from 0 to 65535, got 70000"),
    (["--max-batch", "0"], "--max-batch must be at least 1, got 0"),
    (["--allow-origin", "localhost:3000/app"], "--allow-origin 'localhost:3000/app' is not an origin"),
])
def test_bad_serve_flags_are_one_line_and_exit_2(trained_run, args, message):
    r = subprocess.run([sys.executable, "-m", "charrnn", "serve", "-c", str(trained_run / "best.pt"), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "" and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_openapi_json_describes_every_route_the_server_has(server, trained_run):
    from charrnn.api.model import load
    from charrnn.serve.config import ServeConfig
    from charrnn.serve.server import Service, build_app

    document = server.get("/openapi.json")
    assert document["openapi"].startswith("3.1") and document["info"]["title"] == f"charrnn serve: {trained_run.name}"
    routes = {(r.path, m.lower()) for r in build_app(Service(load(trained_run, device="cpu"), ServeConfig())).routes
              for m in r.methods - {"HEAD"}}
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert routes == documented
    assert document["paths"]["/v1/sample"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]["n"]["maximum"] == 6  # the server's --max-batch


def test_the_contract_every_answer_is_checked_against_can_fail(server):
    with pytest.raises(AssertionError, match="required"):
        server.contract.check("POST", "/v1/sample", 200, "application/json", b'{"type": "done", "seed": 1}')
    with pytest.raises(AssertionError, match="does not list"):
        server.contract.check("POST", "/v1/score", 418, "application/json", b"{}")
    with pytest.raises(AssertionError, match="is not valid under any of the given schemas"):
        server.contract.check("POST", "/v1/sample", 200, "application/x-ndjson", b'{"type": "text", "i": "0", "text": ""}')
