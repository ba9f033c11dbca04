"""charrnn on an NVIDIA GPU: the training step against bare cuDNN, host syncs in the hot loop,
batched sampling against the device's matmul rate, and the model five GPU-minutes buy.

    make gpu-bench                             # both parts, one 10-minute command each
    python benchmarks/gpu_bench.py speed       # step overhead, host syncs, sampling (~3 minutes)
    python benchmarks/gpu_bench.py quality     # charrnn train tinyshakespeare.txt --time 5m (~6 minutes)

Runs from the source tree with the machine's own torch (PYTHONPATH=.; make sets it). Each part
merges its figures into benchmarks/RESULTS-gpu.json and rewrites the GPU section of RESULTS.md,
which `make bench` on a CPU keeps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import LN2, TINY, compare_steps, lstm_flops_per_char, machine, matmul_flops, quality  # noqa: E402

from charrnn.checkpoint import bundled_model  # noqa: E402
from charrnn.config import SampleConfig, TrainConfig  # noqa: E402
from charrnn.data import Vocab, read_text  # noqa: E402
from charrnn.inference import load_model  # noqa: E402
from charrnn.sample import generate  # noqa: E402
from charrnn.train import train  # noqa: E402
from charrnn.trainer import SYNC_EVERY, Reporter  # noqa: E402

RESULTS, GPU_JSON = HERE / "RESULTS.md", HERE / "RESULTS-gpu.json"
CARRIED = HERE / "data" / "tinyshakespeare.txt"  # where a GPU machine finds the corpus when ../shared is not there
# The host's waits, as the CUDA runtime sees them: .item() shows as aten::_local_scalar_dense and as the
# cudaStreamSynchronize it makes, so counting the op too would count each wait twice.
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
TARGET = 1.38  # issue 14: --time 5m on tinyshakespeare, whole validation split


class Profiled(Reporter):
    """Steps a torch profiler once per training step: it records steps wait..wait+active of the loop."""

    def __init__(self, prof):
        self.prof = prof

    def step(self, *args) -> None:
        self.prof.step()


def host_syncs(docs, work: Path, wait: int = 20, active: int = 40) -> dict:
    """Host synchronisations per SYNC_EVERY training steps of charrnn's own loop (1 x 512, default precision)."""
    from torch.profiler import ProfilerActivity, profile, schedule

    sched = schedule(wait=wait, warmup=0, active=active, repeat=1)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], schedule=sched) as prof:
        train(docs, {"layers": 1, "hidden": 512}, TrainConfig(device="cuda", steps=wait + active + 5, eval_every=10**9,
                                                              val_frac=0.01), work / "gpu-profile",
              reporter=Profiled(prof), sample_every_eval=0)
    counts = {e.key: e.count for e in prof.key_averages() if e.key in SYNC_EVENTS}
    total = sum(counts.values())
    return {"steps": active, "events": counts, "per_sync_every": total / active * SYNC_EVERY}


def sampling(device, flops: float) -> dict:
    """Characters per second of the bundled 1 x 512 model: one stream, and 1,024 streams as one batch."""
    model, vocab, raw = load_model(bundled_model(), device)
    rates = {}
    for streams, length in ((1, 3000), (1024, 400)):
        best = 0.0
        for seed in range(3):
            t0 = time.perf_counter()
            n = sum(1 for _, c in generate(model, vocab, "", SampleConfig(length=length, num_samples=streams, seed=seed),
                                           device) if c is not None)
            torch.cuda.synchronize()
            best = max(best, n / (time.perf_counter() - t0))
        rates[streams] = best
    bound = flops / lstm_flops_per_char(raw["model_config"], len(vocab))
    return {"one": rates[1], "batch1024": rates[1024], "bound": bound, "ratio": rates[1024] / bound}


def speed(corpus: Path, work: Path) -> dict:
    device = torch.device("cuda")
    docs = [read_text(corpus)]
    vocab_size = len(Vocab.from_texts(docs))
    steps, cfg = [], TrainConfig(device="cuda", batch_size=32)  # 32 x 64, as the table says
    for layers, hidden in ((1, 512), (2, 512), (2, 1024)):
        o, b = compare_steps(docs, vocab_size, {"layers": layers, "hidden": hidden}, cfg, 300, 30,
                             work / f"gpu-speed-{layers}x{hidden}", device)
        chars = 32 * 64
        steps.append({"model": f"{layers} x {hidden}", "charrnn": chars / o, "bare": chars / b, "overhead": o / b - 1})
        print(f"  gpu train {layers}x{hidden}: {chars / o:,.0f} chars/s, bare {chars / b:,.0f}, "
              f"{100 * (o / b - 1):+.1f}%", file=sys.stderr)
    flops = matmul_flops(device, n=8192)
    return {"steps": steps, "syncs": host_syncs(docs, work), "flops": flops, "sampling": sampling(device, flops)}


def gpu_quality(corpus: Path, work: Path, budget: str = "5m") -> dict:
    """`charrnn train CORPUS --time 5m` with defaults, measured as `make bench` measures its budgets."""
    return {**quality(corpus, budget, work / "gpu"), "corpus": corpus.name}


def gpu_section(data: dict | None) -> list[str]:
    """The GPU section of RESULTS.md, from RESULTS-gpu.json (also what bench.py writes on a CPU)."""
    if not data:
        return ["## GPU", "", "Not measured yet: no GPU has run `make gpu-check` (benchmarks/gpu_bench.py). The CUDA "
                "paths are written to be correct by construction; tests/test_cuda.py runs them where CUDA is present."]
    lines = ["## GPU", "", f"Written by `make gpu-bench` on {data.get('date', '?')}: {data['machine'].get('gpu')}, "
             f"torch {data['machine'].get('torch')}.", ""]
    s = data.get("speed")
    if s:
        lines += ["| model (batch 32 x seq 64, fp16 autocast) | charrnn chars/s | bare cuDNN chars/s | overhead |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['charrnn']:,.0f} | {r['bare']:,.0f} | {100 * r['overhead']:+.1f}% |" for r in s["steps"]]
        sy, sa = s["syncs"], s["sampling"]
        events = ", ".join(f"{k} x{v}" for k, v in sy["events"].items()) or "none"
        lines += ["", f"Host synchronisations in the training loop (torch profiler, {sy['steps']} steps): "
                  f"{sy['per_sync_every']:.1f} per {SYNC_EVERY} steps ({events}).",
                  "", f"Sampling the bundled 1 x 512: one stream {sa['one']:,.0f} chars/s; 1,024 streams {sa['batch1024']:,.0f} "
                  f"chars/s = {sa['ratio']:.2f} of the {sa['bound']:,.0f} chars/s the measured fp32 matmul rate "
                  f"({s['flops'] / 1e12:.1f} TFLOP/s) allows (sampling runs in plain fp32, TF32 off in cuDNN too: "
                  "runtime.plain_fp32)."]
    q = data.get("quality")
    if q:
        lines += [""] if s else []
        lines += [f"`charrnn train {q['corpus']} --time {q['budget']}` on the GPU: **{q['val_loss']:.4f}** nats/char "
                  f"({q['val_loss'] / LN2:.4f} bpc; target <= {TARGET}: {'met' if q['val_loss'] <= TARGET else 'not met'}), "
                  f"best at step {q['step']:,} of {q['steps']:,}, {q['chars_per_s']:,.0f} chars/s; {q['model']}."]
    return lines


def load_gpu_results() -> dict | None:
    return json.loads(GPU_JSON.read_text()) if GPU_JSON.exists() else None


def rewrite_results(data: dict) -> None:
    """Replace the GPU section (the last one) of RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# charrnn benchmark results\n\n## GPU\n"
    head = text.split("\n## GPU\n", 1)[0].rstrip("\n")
    RESULTS.write_text(head + "\n\n" + "\n".join(gpu_section(data)) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", help="speed, quality (default: both)")
    ap.add_argument("--corpus", type=Path, default=next((p for p in (TINY, CARRIED) if p.exists()),
                                                        HERE.parent / "corpora" / "shakespeare.txt"))
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    args = ap.parse_args()
    if set(args.parts) - {"speed", "quality"}:
        ap.error(f"parts are speed and quality, not {' '.join(args.parts)}")
    if not torch.cuda.is_available():
        print("gpu-bench: no CUDA GPU here; nothing measured", file=sys.stderr)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    data = load_gpu_results() or {}
    data.update(machine=machine(), date=time.strftime("%Y-%m-%d"))
    for part in args.parts or ["speed", "quality"]:
        data[part] = speed(args.corpus, args.work) if part == "speed" else gpu_quality(args.corpus, args.work)
        GPU_JSON.write_text(json.dumps(data, indent=1) + "\n")
        rewrite_results(data)
        print(f"gpu-bench: {part} done; wrote {GPU_JSON} and the GPU section of {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
