"""What keeps one client from holding `charrnn serve` (serve/guard.py and the routes' limits), against a real server
on loopback with short limits: a slow head or body, a client that never reads, a request that runs too long, and a
queue that is full."""

import http.client
import json
import socket
import threading
import time

import pytest
from conftest import Server

pytestmark = pytest.mark.slow
# A request that runs until a limit stops it: greedy decoding of the tiny model never ends a document by itself.
ENDLESS = {"prime": "ROMEO:", "length": 1_000_000, "greedy": True, "stream": False}


@pytest.fixture(scope="module")
def strict(trained_run):
    """The trained_run model served with limits a test can reach: 1 s for a client, 3 s a request, 2 streams, 2 waiting."""
    s = Server(trained_run / "best.pt", "--client-timeout", "1", "--request-timeout", "3", "--max-batch", "2",
               "--max-queue", "2", "--threads", "1")
    log: list[str] = []  # what the server writes on stderr after its banner, as it writes it
    threading.Thread(target=lambda: log.extend(s.proc.stderr), daemon=True).start()
    yield s, log
    s.stop()


def connect(s) -> socket.socket:
    return socket.create_connection((s.host, int(s.port)), timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False


def test_a_head_sent_slowly_is_cut_off_and_others_are_served_meanwhile(strict):
    s, _ = strict
    slow = [connect(s) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"POST /v1/sample HTTP/1.1\r\nHost: x\r\n")  # and never the rest of the head
    assert s.get("/v1/info")["model"]  # the others' connections do not stop anyone
    t0 = time.perf_counter()
    assert all(closed_within(sock, 5) for sock in slow)
    assert time.perf_counter() - t0 < 4


def test_a_body_sent_slowly_is_a_408(strict):
    s, _ = strict
    sock = connect(s)
    sock.sendall(b"POST /v1/sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"len")
    sock.settimeout(5)
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    record = json.loads(answer.read())
    assert answer.status == 408 and record["error"].startswith("the body took longer than 1 s") and \
        "--client-timeout" in record["error"], record


def test_a_client_that_never_reads_is_left_and_its_streams_freed(strict):
    s, log = strict
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((s.host, int(s.port)))
    body = json.dumps({"prime": "ROMEO:", "length": 1_000_000, "n": 2, "top": 20, "seed": 1}).encode()
    sock.sendall(b"POST /v1/sample HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    time.sleep(0.5)
    assert s.get("/v1/info")["load"]["active_samples"] == 2
    deadline = time.time() + 10
    while s.get("/v1/info")["load"]["active_samples"] and time.time() < deadline:
        time.sleep(0.2)
    assert s.get("/v1/info")["load"]["active_samples"] == 0  # gone long before its million characters
    sock.close()
    time.sleep(0.2)
    assert not log, "".join(log)  # the server said nothing: leaving a slow reader is no error


def test_a_request_runs_at_most_its_timeout_and_ends_its_samples_there(strict):
    s, _ = strict
    t0 = time.perf_counter()
    status, done = s.post("/v1/sample", {**ENDLESS, "seed": 2})
    took = time.perf_counter() - t0
    assert status == 200 and done["samples"][0]["ended"] == "time" and 2.5 < took < 6, (took, done["samples"][0]["ended"])
    assert len(done["samples"][0]["text"]) > 100


def test_a_full_queue_refuses_new_requests_with_503_and_retry_after(strict):
    s, _ = strict
    answers = []
    streams = [threading.Thread(target=lambda k=k: answers.append(s.post("/v1/sample", {**ENDLESS, "seed": k})))
               for k in range(4)]  # 2 run, 2 wait
    for t in streams:
        t.start()
        time.sleep(0.2)
    conn = http.client.HTTPConnection(s.host, int(s.port), timeout=10)
    conn.request("POST", "/v1/sample", json.dumps({"length": 10, "stream": False}))
    answer = conn.getresponse()
    record = json.loads(answer.read())
    assert answer.status == 503 and answer.getheader("retry-after") and "--max-queue" in record["error"], record
    for t in streams:
        t.join()
    # All four ended at their time: the two that waited ran only what was left of theirs (counted from arrival).
    assert [status for status, _ in answers] == [200] * 4
    assert all(a["samples"][0]["ended"] == "time" for _, a in answers)
    made = sorted(len(a["samples"][0]["text"]) for _, a in answers)
    assert made[0] < made[-1] / 2, made
