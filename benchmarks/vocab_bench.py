"""Large vocabularies: the full softmax against the adaptive one, training and sampling, and what vocabulary
sizes the adaptive softmax makes affordable (the --max-vocab limit).

    python benchmarks/vocab_bench.py          # ~4 minutes on 2 cores; writes benchmarks/VOCAB.md and VOCAB.json

1. On the Chinese set corpus (benchmarks/data/chinese, 6,175 characters), a 1 x 256 LSTM with each output layer,
   trained 150 steps: training chars/s, then sampling chars/s with one stream and with 64, the two models
   alternating five times (the best of each).
2. Training chars/s of a 1 x 256 adaptive model on Zipf-distributed text over 6,175 ... 200,000 characters
   (sizing.measure_chars_per_s, the measurement --time sizing makes), against the full softmax where it fits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import CHARRNN, machine  # noqa: E402
from corpus_set import DATA  # noqa: E402

from charrnn.api.loading import load_model  # noqa: E402
from charrnn.model.config import ModelConfig  # noqa: E402
from charrnn.model.heads import cutoffs_for  # noqa: E402
from charrnn.training.sizing import measure_chars_per_s  # noqa: E402
from charrnn.writing.config import SampleConfig  # noqa: E402
from charrnn.writing.sample import generate  # noqa: E402

CHINESE = DATA / "chinese" / "chinese.txt"
SIZES = (6_175, 20_000, 50_000, 100_000, 200_000)


def trained(softmax: str, work: Path) -> tuple[Path, float]:
    out = work / f"vocab-{softmax}"
    log = subprocess.run([*CHARRNN, "train", str(CHINESE), "--softmax", softmax, "--layers", "1", "--hidden", "256",
                          "--steps", "150", "--eval-every", "150", "--out", str(out), "--force", "-q"],
                         check=True, capture_output=True, text=True).stderr
    rate = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["chars_per_s"]
    print(f"  {softmax}: trains at {rate:,.0f} chars/s ({log.strip().splitlines()[-1][:80]})", file=sys.stderr)
    return out / "last.pt", rate


def sampling(paths: dict[str, Path]) -> dict[str, dict[int, float]]:
    models = {k: load_model(p)[:2] for k, p in paths.items()}
    best = {k: {1: 0.0, 64: 0.0} for k in paths}
    for seed in range(5):
        for streams, length in ((1, 2000), (64, 300)):
            for k, (model, vocab) in models.items():  # alternating, so drift falls on both
                cfg = SampleConfig(length=length, num_samples=streams, seed=seed)
                t0 = time.perf_counter()
                n = sum(1 for _, ch in generate(model, vocab, "", cfg, "cpu") if ch is not None)
                best[k][streams] = max(best[k][streams], n / (time.perf_counter() - t0))
    return best


def affordable() -> list[dict]:
    rows = []
    for v in SIZES:
        counts = np.maximum(1, (1e7 / np.arange(1, v + 1)).astype(np.int64))  # Zipf, as characters in real text
        row = {"vocab": v}
        for softmax in ("adaptive", "full"):
            if softmax == "full" and v > 50_000:
                continue
            mc = ModelConfig(vocab_size=v, layers=1, hidden=256, softmax=softmax,
                             cutoffs=cutoffs_for(counts) if softmax == "adaptive" else ())
            row[softmax] = measure_chars_per_s(mc, 32, 64, torch.device("cpu"), counts=counts)
        print(f"  vocab {v:,}: {row}", file=sys.stderr)
        rows.append(row)
    return rows


def main() -> None:
    work = HERE / "runs"
    rates, paths = {}, {}
    for softmax in ("full", "adaptive"):
        paths[softmax], rates[softmax] = trained(softmax, work)
    speed = sampling(paths)
    sizes = affordable()
    info = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    (HERE / "VOCAB.json").write_text(json.dumps({"info": info, "train": rates, "sample": speed, "sizes": sizes}, indent=1))
    m = info["machine"]
    lines = ["# Large vocabularies: full against adaptive softmax", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; {info['date']}. `python benchmarks/vocab_bench.py`.",
             "", "Chinese set corpus (6,175 characters), LSTM 1 x 256, fp32:", "",
             "| output layer | training chars/s | sampling, 1 stream | sampling, 64 streams |", "| --- | --- | --- | --- |"]
    for k in ("full", "adaptive"):
        lines.append(f"| {k} | {rates[k]:,.0f} | {speed[k][1]:,.0f} | {speed[k][64]:,.0f} |")
    lines += ["", "Training chars/s of a 1 x 256 LSTM by vocabulary size (Zipf-distributed text; what `--time` sizing "
              "measures):", "", "| vocabulary | adaptive | full |", "| --- | --- | --- |"]
    for r in sizes:
        full = f"{r['full']:,.0f}" if "full" in r else "not run"
        lines.append(f"| {r['vocab']:,} | {r['adaptive']:,.0f} | {full} |")
    (HERE / "VOCAB.md").write_text("\n".join(lines) + "\n")
    print("vocab_bench: wrote benchmarks/VOCAB.md", file=sys.stderr)


if __name__ == "__main__":
    main()
