"""What a client can do to hold `charrnn serve`, measured: slow heads (slowloris), slow bodies, a client that never
reads, and a flood of tiny requests.

    python benchmarks/serve_limits.py        # part of `make bench-serve`; ~1 minute

The serve benchmark's model (serve_bench.bench_model), served with its defaults (--client-timeout 10, --request-timeout
300, --max-queue 1024), except the flood, which is also run against --max-queue 16 to show the refusals. Each
measurement: what the abusive clients got, and what a well-behaved client got meanwhile. Writes benchmarks/LIMITS.md
and LIMITS.json.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import machine  # noqa: E402
from serve_bench import Served, bench_model  # noqa: E402

SLOW, FLOOD_CLIENTS, FLOOD_SECONDS = 500, 32, 8


def ask(server: Served, body: dict, path: str = "/v1/sample") -> tuple[int, float]:
    """(status, seconds) of one whole request."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.request("POST", path, json.dumps(body))
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer.status, time.perf_counter() - t0


def closed_after(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the server closed `sock` (None: still open after `limit`)."""
    t0 = time.perf_counter()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
        return time.perf_counter() - t0
    except TimeoutError:
        return None


def slow_heads(server: Served) -> dict:
    socks = []
    for _ in range(SLOW):
        s = socket.create_connection((server.host, server.port))
        s.sendall(b"POST /v1/sample HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    meanwhile = [ask(server, {"prime": "ROMEO.", "length": 50, "stream": False, "seed": 1})[1] for _ in range(5)]
    closed = [closed_after(s, 30) for s in socks]
    return {"connections": SLOW, "closed": sum(c is not None for c in closed),
            "closed_after_s": max(c for c in closed if c is not None), "meanwhile_s": statistics.median(meanwhile)}


def slow_body(server: Served) -> dict:
    s = socket.create_connection((server.host, server.port))
    t0 = time.perf_counter()
    s.sendall(b"POST /v1/sample HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    done = threading.Event()

    def trickle() -> None:  # a byte a second
        while not done.wait(1.0):
            try:
                s.sendall(b" ")
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    s.settimeout(60)
    answer = http.client.HTTPResponse(s)
    answer.begin()
    done.set()
    return {"status": answer.status, "after_s": time.perf_counter() - t0}


def never_reads(server: Served) -> dict:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((server.host, server.port))
    body = json.dumps({"prime": "ROMEO.", "length": 1_000_000, "n": 4, "top": 20, "seed": 1}).encode()
    t0 = time.perf_counter()
    s.sendall(b"POST /v1/sample HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    while time.perf_counter() - t0 < 120:
        time.sleep(0.25)
        if info(server)["load"]["active_samples"] == 0:
            break
    freed = time.perf_counter() - t0
    s.close()
    return {"streams": 4, "freed_after_s": freed}


def info(server: Served) -> dict:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.request("GET", "/v1/info")
    record = json.loads(conn.getresponse().read())
    conn.close()
    return record


def flood(server: Served) -> dict:
    """FLOOD_CLIENTS threads sending tiny requests back to back for FLOOD_SECONDS."""
    results: list[tuple[int, float]] = []
    stop = time.perf_counter() + FLOOD_SECONDS

    def client(k: int) -> None:
        while time.perf_counter() < stop:
            results.append(ask(server, {"prime": "A", "length": 8, "stream": False, "seed": k}))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(FLOOD_CLIENTS)]
    for t in threads:
        t.start()
    meanwhile = ask(server, {"prime": "ROMEO.", "length": 50, "stream": False, "seed": 1})
    for t in threads:
        t.join()
    served = sorted(s for status, s in results if status == 200)
    return {"clients": FLOOD_CLIENTS, "requests": len(results), "per_s": len(results) / FLOOD_SECONDS,
            "served": len(served), "refused_503": sum(status == 503 for status, _ in results),
            "p50_s": statistics.median(served), "p99_s": statistics.quantiles(served, n=100)[98],
            "meanwhile": meanwhile}


def measure() -> dict:
    ckpt = bench_model()
    out = {"machine": machine()}
    server = Served(ckpt)
    try:
        ask(server, {"length": 10, "stream": False})  # warm
        out["slow_heads"], out["slow_body"], out["never_reads"] = slow_heads(server), slow_body(server), never_reads(server)
        out["flood"] = flood(server)
    finally:
        server.stop()
    small = Served(ckpt, "--max-queue", "16")
    try:
        out["flood_small_queue"] = flood(small)
    finally:
        small.stop()
    return out


def write(r: dict) -> str:
    h, b, n, f, q = r["slow_heads"], r["slow_body"], r["never_reads"], r["flood"], r["flood_small_queue"]
    lines = ["# charrnn serve: what one client can hold", "",
             f"Written by `benchmarks/serve_limits.py` (`make bench-serve`) on {r['machine']['cpu']}, "
             f"{r['machine']['cores']} cores, torch {r['machine']['torch']}; serve's defaults unless said.", "",
             "| what the client does | what the server does | a well-behaved client meanwhile |", "| --- | --- | --- |",
             f"| opens {h['connections']} connections and sends half a request head on each (slowloris) | closes "
             f"{h['closed']} of them, {h['closed_after_s']:.1f} s after they opened (`--client-timeout` 10) | a 50-character "
             f"sample in {h['meanwhile_s'] * 1000:.0f} ms |",
             f"| sends a 1,000-byte body a byte a second | answers {b['status']} after {b['after_s']:.1f} s | |",
             f"| asks for 4 streams of a million characters with 20 alternatives each, and never reads | frees the streams "
             f"{n['freed_after_s']:.1f} s after the request, once a write has waited 10 s | |",
             f"| {f['clients']} clients send tiny requests back to back for {FLOOD_SECONDS} s | serves {f['served']:,} "
             f"({f['per_s']:,.0f} a second; p50 {f['p50_s'] * 1000:.0f} ms, p99 {f['p99_s'] * 1000:.0f} ms), refuses "
             f"{f['refused_503']} | a 50-character sample in {f['meanwhile'][1] * 1000:.0f} ms |",
             f"| the same against `--max-queue 16` | serves {q['served']:,}, refuses {q['refused_503']:,} with 503 and "
             f"Retry-After (p50 {q['p50_s'] * 1000:.0f} ms for those served) | a 50-character sample: "
             f"{q['meanwhile'][0]} in {q['meanwhile'][1] * 1000:.0f} ms |", ""]
    return "\n".join(lines)


def main() -> None:
    r = measure()
    (HERE / "LIMITS.json").write_text(json.dumps(r, indent=1) + "\n")
    text = write(r)
    (HERE / "LIMITS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
