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

    def __init__(self, ckpt: Path):
        self.proc = subprocess.Popen([*CHARRNN, "serve", "-c", str(ckpt), "--port", "0"], stderr=subprocess.PIPE, text=True)
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


def measure(rounds: int) -> dict:
    ckpt = bench_model()
    model, vocab, _ = load_model(ckpt)
    server = Served(ckpt)
    try:
        server.rate(1, 0)  # warm both sides up before timing
        in_process(model, vocab, 1, 0)
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
            "length": LENGTH, "clients": CLIENTS, "rounds": rounds, "machine": machine()}


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
    ]
    md.write_text("\n".join(lines) + "\n")


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
