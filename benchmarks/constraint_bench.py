"""Writing only what fits, measured: constrained sampling's speed against unconstrained, and compiling a pattern.

    python benchmarks/constraint_bench.py        # part of `make bench` (make bench-constraint alone); ~1 minute

Speed: the model serve_bench.py serves (the base's shape, 1 x 512, trained once on the bundled Shakespeare as one
document, so samples run to their length), sampled in-process (the library's Sampler, what `charrnn sample` runs)
with 1 stream and with 64 in one batch, prime 'ROMEO.', plain and under each constraint below, measured in turn
within each round (this machine's speed drifts), best of ROUNDS. Target: every constrained rate at least 0.8 of the
plain one, at 1 stream and at 64.
Compile: the typical pattern `[A-Z][a-z]{2,9}( [A-Z][a-z]{2,9})?` made an automaton over the bundled model's
vocabulary, the cache emptied before each, median of 20 (the first, which also imports interegular, apart).
Target: under 50 ms. Writes benchmarks/CONSTRAINT.md and CONSTRAINT.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import machine  # noqa: E402
from serve_bench import bench_model  # noqa: E402

from charrnn.api.loading import load_model  # noqa: E402
from charrnn.model.checkpoint import BUNDLED  # noqa: E402
from charrnn.writing.config import SampleConfig  # noqa: E402
from charrnn.writing.sample import Sampler  # noqa: E402

PRIME, ROUNDS = "ROMEO.", 5
LENGTHS = {1: 1500, 64: 300}
TYPICAL = "[A-Z][a-z]{2,9}( [A-Z][a-z]{2,9})?"
CONSTRAINTS = {  # name -> SampleConfig settings
    "--regex (prose)": dict(regex="[A-Za-z ,.;:'!?\\n-]*"),
    "--ban the --ban and": dict(ban=("the", "and")),
    "--allow 'a-zA-Z ,.\\n'": dict(allow="a-zA-Z ,.\n"),
}


def rate(model, vocab, streams: int, seed: int, **constraint) -> float:
    cfg = SampleConfig(length=LENGTHS[streams], num_samples=streams, seed=seed, **constraint)
    t0 = time.perf_counter()
    made = sum(1 for _, ch in Sampler(model, vocab, PRIME, cfg).events() if ch is not None)
    return made / (time.perf_counter() - t0)


def speeds(model, vocab) -> dict:
    best: dict[tuple[int, str], float] = {}
    for r in range(ROUNDS):
        for streams in LENGTHS:
            for name, constraint in [("plain", {}), *CONSTRAINTS.items()]:
                key = (streams, name)
                best[key] = max(best.get(key, 0.0), rate(model, vocab, streams, seed=r + 1, **constraint))
    return {f"{streams} x {name}": chars for (streams, name), chars in best.items()}


def compile_times(vocab) -> dict:
    from charrnn.writing.constraint import compile_automaton

    times = []
    for _ in range(21):
        compile_automaton.cache_clear()
        t0 = time.perf_counter()
        automaton = compile_automaton(TYPICAL, None, (), tuple(vocab.chars))
        times.append(time.perf_counter() - t0)
    return {"first_ms": times[0] * 1000, "median_ms": statistics.median(times[1:]) * 1000,
            "states": int(automaton.next.shape[0]), "vocabulary": len(vocab.chars)}


def report(speed: dict, compiled: dict, m: dict) -> str:
    lines = ["# Writing only what fits: the cost of a constraint", "",
             f"Written by `benchmarks/constraint_bench.py` (`make bench-constraint`, part of `make bench`) on {m['cpu']}, "
             f"{m['cores']} cores, torch {m['torch']}.",
             "In-process sampling (what `charrnn sample` runs) from the serve benchmark's 1 x 512 LSTM, prime 'ROMEO.', "
             f"{LENGTHS[1]:,} characters per sample with 1 stream and {LENGTHS[64]} with 64; best of {ROUNDS} rounds, "
             "plain and constrained measured in turn.", "",
             "| streams | constraint | chars/s | of plain |", "| ---: | --- | ---: | ---: |"]
    worst = 1.0
    for streams in LENGTHS:
        plain = speed[f"{streams} x plain"]
        lines.append(f"| {streams} | none | {plain:,.0f} | |")
        for name in CONSTRAINTS:
            ratio = speed[f"{streams} x {name}"] / plain
            worst = min(worst, ratio)
            lines.append(f"| {streams} | `{name}` | {speed[f'{streams} x {name}']:,.0f} | {ratio:.2f} |")
    lines += ["", f"Target: every constrained rate at least 0.8 of the plain one: **{'met' if worst >= 0.8 else 'missed'}** "
              f"(lowest {worst:.2f}).", "",
              f"Compiling `{TYPICAL}` over the bundled model's {compiled['vocabulary']} characters "
              f"({compiled['states']} states): **{compiled['median_ms']:.1f} ms** (median of 20, cache emptied each "
              f"time; the first in the process, importing interegular, {compiled['first_ms']:.1f} ms). Target: under 50 "
              f"ms: **{'met' if compiled['median_ms'] < 50 else 'missed'}**.", ""]
    return "\n".join(lines)


def main() -> None:
    import torch

    torch.set_num_threads(2)
    model, vocab, _ = load_model(bench_model())
    compiled = compile_times(load_model(BUNDLED)[1])
    speed = speeds(model, vocab)
    m = machine()
    (HERE / "CONSTRAINT.json").write_text(json.dumps({"speed": speed, "compile": compiled, "machine": m}, indent=1) + "\n")
    text = report(speed, compiled, m)
    (HERE / "CONSTRAINT.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
