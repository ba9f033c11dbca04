"""charrnn serve's throughput: 1 and 16 concurrent HTTP clients against sampling in-process.

    python benchmarks/serve_bench.py            # part of `make bench` (make bench-serve alone); ~2 minutes

The model is the bundled base's shape (1 x 512), trained here for 200 steps on the bundled Shakespeare as
one document (benchmarks/runs/serve-model, made once), so that samples run to their length rather than
end with a speech as the base's do; on the CPU. In-process is the library's Sampler
(what `charrnn sample` runs) with 1 stream and with 16 streams in one batch; serve is `charrnn serve`
in its own process, with 1 client, then 16 clients at once (one sample each, seeds 1-16), reading
the streamed JSON lines over loopback. Each figure is characters made per second of wall time,
the best of ROUNDS rounds, the four measured in turn within each round (this machine's speed drifts).
Target: 16 clients together reach at least half of 16-stream in-process sampling. The same 16 requests
through OpenAI's /v1/completions, streamed, measured in turn: within 15% of /v1/sample's.
Fairness: 16 clients stream /v1/sample (long samples); half a second in, one client sends a 100,000-character prompt
(/v1/completions, max_tokens 5) and, just after it, a new small streamed request starts. Measured, against the same
16 clients without the long prompt, alternately, FAIR_ROUNDS each: the gaps between the 16 clients' successive
arrivals of characters (p50, p99) and their time to first character; the small request's time to first character; and
the long prompt's own time, against reading it alone on the idle server. Targets: p99 gap within 3x of its value
without the long prompt; the small request's first character within 1 s; the long prompt at most 1.5x its time alone.
Writes benchmarks/SERVE.md and SERVE.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import CHARRNN, machine  # noqa: E402

from charrnn.api.loading import load_model  # noqa: E402
from charrnn.writing.config import SampleConfig  # noqa: E402
from charrnn.writing.sample import Sampler  # noqa: E402

PRIME, LENGTH, CLIENTS, ROUNDS = "ROMEO.", 2000, 16, 5
FAIR_CLIENTS, FAIR_LENGTH, LONG_PROMPT, FAIR_ROUNDS = 16, 4000, 100_000, 3


def in_process(model, vocab, streams: int, seed: int) -> float:
    cfg = SampleConfig(length=LENGTH, num_samples=streams, seed=seed, temperature=1.0)
    t0 = time.perf_counter()
    made = sum(1 for _, ch in Sampler(model, vocab, PRIME, cfg).events() if ch is not None)
    return made / (time.perf_counter() - t0)


MODEL = HERE / "runs" / "serve-model"


def bench_model() -> Path:
    """The model the benchmark serves: trained once, kept in benchmarks/runs/."""
    if not (MODEL / "best.pt").exists():
        subprocess.run([*CHARRNN, "train", str(HERE.parent / "corpora" / "shakespeare.txt"), "--layers", "1", "--hidden",
                        "512", "--embed", "64", "--steps", "200", "--seed", "1", "--out", str(MODEL), "-q", "--no-plot",
                        "--sample-length", "0", "--force"], check=True)
    return MODEL / "best.pt"


class Served:
    """charrnn serve on the benchmark model, in a subprocess on a free loopback port."""

    def __init__(self, ckpt: Path, *args: str):
        self.proc = subprocess.Popen([*CHARRNN, "serve", "-c", str(ckpt), "--port", "0", *args], stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stderr.readline()
        found = re.search(r"http://([\d.]+):(\d+)/", line)
        if not found:
            raise SystemExit(f"charrnn serve did not start: {line}{self.proc.stderr.read()}")
        self.host, self.port = found.group(1), int(found.group(2))

    def client(self, seed: int, made: list, k: int) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        conn.request("POST", "/v1/sample", json.dumps({"prime": PRIME, "length": LENGTH, "seed": seed, "temperature": 1.0}))
        for line in conn.getresponse():
            record = json.loads(line)
            if record["type"] == "text":
                made[k] += len(record["text"])
        conn.close()

    def openai_client(self, seed: int, made: list, k: int) -> None:
        """The same request through the OpenAI-compatible route: server-sent chunks, read as they come."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        conn.request("POST", "/v1/completions", json.dumps({"prompt": PRIME, "max_tokens": LENGTH, "seed": seed,
                                                            "temperature": 1.0, "stream": True}))
        for line in conn.getresponse():
            if line.startswith(b"data: {"):
                made[k] += sum(len(c["text"]) for c in json.loads(line[6:])["choices"])
        conn.close()

    def rate(self, clients: int, seed: int, route: str = "sample") -> float:
        made = [0] * clients
        client = self.client if route == "sample" else self.openai_client
        threads = [threading.Thread(target=client, args=(seed + k, made, k)) for k in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(made) / (time.perf_counter() - t0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def watched(self, seed: int, length: int, arrivals: list, k: int) -> None:
        """One streamed /v1/sample client: (sent, [time each text record arrived]) into arrivals[k]."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        sent = time.perf_counter()
        conn.request("POST", "/v1/sample", json.dumps({"prime": PRIME, "length": length, "seed": seed}))
        times = []
        for line in conn.getresponse():
            if json.loads(line)["type"] == "text":
                times.append(time.perf_counter())
        conn.close()
        arrivals[k] = (sent, times)

    def long_prompt(self, prompt: str, took: list) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        t0 = time.perf_counter()
        conn.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": 5, "seed": 1}))
        assert conn.getresponse().status == 200
        took.append(time.perf_counter() - t0)
        conn.close()


def crowd(server: Served, prompt: str | None, seed: int) -> dict:
    """16 streaming clients; with `prompt`, the long prompt sent 0.5 s in, and a new small streamed request just after it.
    Gaps between arrivals (s), the 16 clients' times to first character, the small request's, the prompt's time."""
    arrivals, small, took = [None] * FAIR_CLIENTS, [None], []
    clients = [threading.Thread(target=server.watched, args=(seed + k, FAIR_LENGTH, arrivals, k)) for k in range(FAIR_CLIENTS)]
    for t in clients:
        t.start()
    extra = []
    if prompt is not None:
        time.sleep(0.5)
        extra = [threading.Thread(target=server.long_prompt, args=(prompt, took)),
                 threading.Thread(target=server.watched, args=(seed + 99, 50, small, 0))]
        for t in extra:
            t.start()
            time.sleep(0.05)
    for t in clients + extra:
        t.join()
    gaps = [b - a for _, times in arrivals for a, b in zip(times, times[1:], strict=False)]
    return {"gaps": gaps, "first": [times[0] - sent for sent, times in arrivals],
            "small_first": small[0][1][0] - small[0][0] if small[0] else None, "prompt_s": took[0] if took else None}


def fairness(server: Served, rounds: int) -> dict:
    """Without and with the long prompt, alternately; and the prompt alone on the idle server."""
    prompt = (HERE.parent / "corpora" / "shakespeare.txt").read_text(encoding="utf-8")[:LONG_PROMPT]
    runs = {"without": [], "with": [], "alone": []}
    for r in range(rounds):
        for kind in (("without", "with") if r % 2 == 0 else ("with", "without")):
            runs[kind].append(crowd(server, prompt if kind == "with" else None, 1000 * (r + 1)))
        took: list = []
        server.long_prompt(prompt, took)
        runs["alone"].append(took[0])
        print("  fairness round", r + 1, file=sys.stderr)

    def pct(values, q):
        return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

    out = {}
    for kind in ("without", "with"):
        gaps = [g for run in runs[kind] for g in run["gaps"]]
        first = [f for run in runs[kind] for f in run["first"]]
        out[kind] = {"gap_p50": pct(gaps, 50), "gap_p99": pct(gaps, 99), "first_p50": pct(first, 50),
                     "first_max": max(first)}
    out["small_first"] = max(run["small_first"] for run in runs["with"])
    out["prompt_with"] = statistics.median(run["prompt_s"] for run in runs["with"])
    out["prompt_alone"] = statistics.median(runs["alone"])
    return out


def measure(rounds: int) -> dict:
    ckpt = bench_model()
    model, vocab, _ = load_model(ckpt)
    server = Served(ckpt)
    try:
        server.rate(1, 0)  # warm both sides up before timing
        in_process(model, vocab, 1, 0)
        fair = fairness(server, FAIR_ROUNDS)
        runs = {"inproc_1": [], "serve_1": [], "inproc_16": [], "serve_16": [], "openai_16": []}
        for r in range(rounds):
            runs["inproc_1"].append(in_process(model, vocab, 1, r + 1))
            runs["serve_1"].append(server.rate(1, r + 1))
            runs["inproc_16"].append(in_process(model, vocab, CLIENTS, r + 1))
            # The two routes back to back, in alternating order: their ratio is taken round by round.
            for route in ("sample", "completions")[:: 1 if r % 2 == 0 else -1]:
                runs["serve_16" if route == "sample" else "openai_16"].append(server.rate(CLIENTS, 100 * (r + 1), route))
            print("  round", r + 1, {k: f"{v[-1]:,.0f}" for k, v in runs.items()}, file=sys.stderr)
    finally:
        server.stop()
    best = {k: max(v) for k, v in runs.items()}
    return {**best, "runs": runs, "ratio_16": best["serve_16"] / best["inproc_16"], "ratio_1": best["serve_1"] / best["inproc_1"],
            "ratio_openai": statistics.median(o / s for o, s in zip(runs["openai_16"], runs["serve_16"], strict=True)),
            "length": LENGTH, "clients": CLIENTS, "rounds": rounds, "machine": machine(), "fairness": fair}


def write(r: dict, md: Path) -> None:
    ok = r["ratio_16"] >= 0.5
    lines = [
        "# charrnn serve: throughput", "",
        f"Written by `benchmarks/serve_bench.py` (`make bench-serve`, part of `make bench`) on {r['machine']['cpu']}, "
        f"{r['machine']['cores']} cores, torch {r['machine']['torch']}.",
        f"A 1 x 512 LSTM (the base's shape; `benchmarks/runs/serve-model`), CPU, prime {PRIME!r}, "
        f"{r['length']:,} characters per sample, temperature 1; "
        f"best of {r['rounds']} rounds, measured in turn.", "",
        "| | in-process (`Sampler`) | `charrnn serve` over HTTP | serve / in-process |",
        "| --- | ---: | ---: | ---: |",
        f"| 1 stream / 1 client | {r['inproc_1']:,.0f} chars/s | {r['serve_1']:,.0f} chars/s | {r['ratio_1']:.2f} |",
        f"| 16 streams / 16 clients | {r['inproc_16']:,.0f} chars/s | {r['serve_16']:,.0f} chars/s | {r['ratio_16']:.2f} |",
        f"| 16 clients on OpenAI's `/v1/completions`, streamed | | {r['openai_16']:,.0f} chars/s "
        f"| {r['ratio_openai']:.2f} of `/v1/sample`'s (median of the rounds' ratios) |",
        "", f"Target: 16 clients reach at least half of 16-stream in-process sampling: **{'met' if ok else 'NOT met'}** "
        f"({r['ratio_16']:.2f}). The clients share the server's batch: each step advances every client's stream at once.",
        f"Target: 16 streamed clients of `/v1/completions` within 15% of `/v1/sample`'s: "
        f"**{'met' if r['ratio_openai'] >= 0.85 else 'NOT met'}** ({r['ratio_openai']:.2f}).",
        *fairness_lines(r["fairness"]),
    ]
    md.write_text("\n".join(lines) + "\n")


def fairness_lines(f: dict) -> list[str]:
    ms = {k: {m: v * 1000 for m, v in f[k].items()} for k in ("without", "with")}
    gap_ok, small_ok = ms["with"]["gap_p99"] <= 3 * ms["without"]["gap_p99"], f["small_first"] <= 1.0
    prompt_ok = f["prompt_with"] <= 1.5 * f["prompt_alone"]
    return [
        "", "## A long prompt among streaming clients", "",
        f"{FAIR_CLIENTS} clients stream `/v1/sample` ({FAIR_LENGTH:,} characters each); half a second in, one client sends a "
        f"{LONG_PROMPT:,}-character prompt to `/v1/completions` (`max_tokens` 5), and a new small streamed request "
        f"starts just after it. Without and with the long prompt, alternately, {FAIR_ROUNDS} rounds each (all gaps "
        "pooled). The engine reads a prompt a piece at a time between its steps (`PRIME_PIECE` characters).", "",
        "| | gap between arrivals, p50 | p99 | first character, p50 | worst |", "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {kind} the long prompt | {ms[kind]['gap_p50']:.1f} ms | {ms[kind]['gap_p99']:.1f} ms | "
          f"{ms[kind]['first_p50']:.1f} ms | {ms[kind]['first_max']:.1f} ms |" for kind in ("without", "with")), "",
        f"Target: the others' p99 gap within 3x of its value without the long prompt: **{'met' if gap_ok else 'NOT met'}** "
        f"({ms['with']['gap_p99'] / ms['without']['gap_p99']:.2f}x).",
        f"Target: a new small request's first character within 1 s: **{'met' if small_ok else 'NOT met'}** "
        f"({f['small_first'] * 1000:.0f} ms, the worst round).",
        f"Target: the long prompt at most 1.5x its time alone: **{'met' if prompt_ok else 'NOT met'}** "
        f"({f['prompt_with']:.2f} s among the clients, {f['prompt_alone']:.2f} s alone: "
        f"{f['prompt_with'] / f['prompt_alone']:.2f}x; medians).",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--out", type=Path, default=HERE / "SERVE.md")
    args = ap.parse_args()
    r = measure(args.rounds)
    write(r, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(r, indent=1) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
