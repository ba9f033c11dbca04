"""charrnn on an NVIDIA GPU: the training step against bare cuDNN, host syncs in the hot loop,
batched sampling against the device's matmul rate, and the model five GPU-minutes buy.

    make gpu-check OUT=$OUT                    # on the lent GPU: cuda tests, then both parts (~9 minutes)
    python benchmarks/gpu_bench.py speed       # step overhead, host syncs, sampling (~1-2 minutes)
    python benchmarks/gpu_bench.py quality     # charrnn train tinyshakespeare.txt --time 5m (~5.5 minutes)
    python benchmarks/gpu_bench.py --smoke --device cpu   # every part at toy sizes: checks this script anywhere

Runs from the source tree with the machine's own torch (PYTHONPATH=.; make sets it). Each part
merges its figures into benchmarks/RESULTS-gpu.json and rewrites the GPU section of RESULTS.md,
which `make bench` on a CPU keeps; with --copy-to DIR it copies both there as each part ends (the
device tool brings back only what lands in its $OUT). A --smoke run writes under --work instead.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import LN2, TINY, compare_steps, lstm_flops_per_char, machine, matmul_flops, quality, sampling_rate  # noqa: E402

from charrnn.api.loading import load_model  # noqa: E402
from charrnn.model.checkpoint import bundled_model  # noqa: E402
from charrnn.text.data import Vocab, read_text  # noqa: E402
from charrnn.training.config import TrainConfig  # noqa: E402
from charrnn.training.train import train  # noqa: E402
from charrnn.training.trainer import SYNC_EVERY, Reporter  # noqa: E402

RESULTS, GPU_JSON = HERE / "RESULTS.md", HERE / "RESULTS-gpu.json"
CARRIED = HERE / "data" / "tinyshakespeare.txt"  # where a GPU machine finds the corpus when ../shared is not there
# The host's waits, as the CUDA runtime sees them: .item() shows as aten::_local_scalar_dense and as the
# cudaStreamSynchronize it makes, so counting the op too would count each wait twice.
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
T = TypeVar("T")
TARGET = 1.38  # issue 14: --time 5m on tinyshakespeare, whole validation split


@dataclass(frozen=True)
class Plan:
    """What one run measures, and where: the real GPU run, or a --smoke run of every part at toy sizes."""

    device: str = "cuda"
    # (layers, hidden, weight drop): the step compared with bare cuDNN; a weight-drop row measures what the masked
    # recurrent matrices cost there (they cannot live in cuDNN's flat weight buffer), not judged against the target.
    models: tuple[tuple[int, int, float], ...] = ((1, 512, 0.0), (2, 512, 0.0), (2, 1024, 0.0), (1, 512, 0.3))
    steps: int = 300  # timed training steps per model (the first `skip` not counted)
    skip: int = 30
    profiled: int = 40  # steps the profiler records
    sample_lengths: tuple[tuple[int, int], ...] = ((1, 3000), (1024, 400))  # (streams, characters each)
    matmul_n: int = 8192
    budget: str = "5m"

    @classmethod
    def smoke(cls, device: str) -> Plan:
        return cls(device, models=((1, 64, 0.0), (1, 64, 0.3)), steps=12, skip=2, profiled=4, sample_lengths=((1, 50), (1024, 5)),
                   matmul_n=256, budget="3s")


class Profiled(Reporter):
    """Steps a torch profiler once per training step: it records steps wait..wait+active of the loop."""

    def __init__(self, prof):
        self.prof = prof

    def step(self, *args) -> None:
        self.prof.step()


def host_syncs(docs, work: Path, plan: Plan, wait: int = 20) -> dict:
    """Host synchronisations per SYNC_EVERY training steps of charrnn's own loop (1 x 512, default precision)."""
    from torch.profiler import ProfilerActivity, profile, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if plan.device == "cuda" else [])
    with profile(activities=activities, schedule=schedule(wait=wait - 1, warmup=1, active=plan.profiled, repeat=1)) as prof:
        train(docs, {"layers": 1, "hidden": plan.models[0][1]},
              TrainConfig(device=plan.device, steps=wait + plan.profiled + 5, eval_every=10**9, val_frac=0.01),
              work / "gpu-profile", reporter=Profiled(prof), sample_every_eval=0)
    counts = {e.key: e.count for e in prof.key_averages() if e.key in SYNC_EVENTS}
    return {"steps": plan.profiled, "events": counts, "per_sync_every": sum(counts.values()) / plan.profiled * SYNC_EVERY}


def sampling(plan: Plan, flops: float) -> dict:
    """Characters per second of the bundled 1 x 512 model: one stream, and 1,024 streams as one batch."""
    device = torch.device(plan.device)
    model, vocab, raw = load_model(bundled_model(), device)
    rates = {streams: sampling_rate(model, vocab, streams, length, 3, device) for streams, length in plan.sample_lengths}
    bound = flops / lstm_flops_per_char(raw["model_config"], len(vocab))
    return {"one": rates[1], "batch1024": rates[1024], "bound": bound, "ratio": rates[1024] / bound}


def attempt(what: str, fn: Callable[[], T]) -> T | None:
    """fn's result, or None with its traceback on stderr: one failing measurement must not cost a loan the others."""
    try:
        return fn()
    except Exception:
        traceback.print_exc()
        print(f"gpu-bench: {what} failed; going on with the rest", file=sys.stderr)
        return None


def step_row(docs, vocab_size: int, layers: int, hidden: int, weight_drop: float, work: Path, plan: Plan) -> dict:
    """charrnn's training step against the bare cuDNN step (which has no weight drop), 32 x 64, as the table says."""
    cfg = TrainConfig(device=plan.device, batch_size=32)
    chars = cfg.batch_size * cfg.seq_len
    name = f"{layers} x {hidden}" + (f", weight drop {weight_drop:g}" if weight_drop else "")
    o, b = compare_steps(docs, vocab_size, {"layers": layers, "hidden": hidden, "weight_drop": weight_drop}, cfg,
                         plan.steps, plan.skip, work / f"gpu-speed-{layers}x{hidden}-wd{weight_drop:g}",
                         torch.device(plan.device))
    print(f"  gpu train {name}: {chars / o:,.0f} chars/s, bare {chars / b:,.0f}, {100 * (o / b - 1):+.1f}%", file=sys.stderr)
    return {"model": name, "charrnn": chars / o, "bare": chars / b, "overhead": o / b - 1, "optional": bool(weight_drop)}


def speed(corpus: Path, work: Path, plan: Plan) -> dict:
    docs = [read_text(corpus)]
    vocab_size = len(Vocab.from_texts(docs))
    rows = [attempt(f"the step of {m}", lambda m=m: step_row(docs, vocab_size, *m, work, plan)) for m in plan.models]
    # The bound for sampling, in the arithmetic sampling runs: true fp32 (plain_fp32 turns cuDNN's TF32 off, and
    # matrix products default to "highest"), so TF32's rate would overstate it.
    flops = attempt("the matmul rate", lambda: matmul_flops(torch.device(plan.device), n=plan.matmul_n))
    return {"steps": [r for r in rows if r], "syncs": attempt("the host syncs", lambda: host_syncs(docs, work, plan)),
            "flops": flops, "matmul_precision": torch.get_float32_matmul_precision(),
            "sampling": attempt("sampling", lambda: sampling(plan, flops)) if flops else None}


def gpu_quality(corpus: Path, work: Path, plan: Plan) -> dict:
    """`charrnn train CORPUS --time 5m` with defaults, measured as `make bench` measures its budgets."""
    return {**quality(corpus, plan.budget, work / "gpu", plan.device), "corpus": corpus.name}


def gpu_section(data: dict | None) -> list[str]:
    """The GPU section of RESULTS.md, from RESULTS-gpu.json (also what bench.py writes on a CPU)."""
    if not data:
        return ["## GPU", "", "Not measured yet: no GPU has run `make gpu-check` (benchmarks/gpu_bench.py). The CUDA "
                "paths are written to be correct by construction; tests/test_cuda.py runs them where CUDA is present."]
    lines = ["## GPU", "", f"Written by `make gpu-check` on {data.get('date', '?')}: {data['machine'].get('gpu')}, "
             f"torch {data['machine'].get('torch')}.", ""]
    s = data.get("speed")
    lines += speed_lines(s) if s else []
    q = data.get("quality")
    if q:
        lines += [""] if s else []
        lines += [f"`charrnn train {q['corpus']} --time {q['budget']}` on the GPU: **{q['val_loss']:.4f}** nats/char "
                  f"({q['val_loss'] / LN2:.4f} bpc; target <= {TARGET}: {'met' if q['val_loss'] <= TARGET else 'not met'}), "
                  f"best at step {q['step']:,} of {q['steps']:,}, {q['chars_per_s']:,.0f} chars/s; {q['model']}."]
    return lines


def speed_lines(s: dict) -> list[str]:
    failed = "not measured: it failed on the GPU (gpu-bench-speed.log has why)"
    lines = []
    if s["steps"]:
        worst = max([r["overhead"] for r in s["steps"] if not r.get("optional")] or [math.inf])
        lines += ["| model (batch 32 x seq 64, fp16 autocast) | charrnn chars/s | bare cuDNN chars/s | overhead |",
                  "| --- | --- | --- | --- |",
                  *(f"| {r['model']} | {r['charrnn']:,.0f} | {r['bare']:,.0f} | {100 * r['overhead']:+.1f}% |"
                    for r in s["steps"]),
                  "", f"Step overhead against bare cuDNN, at worst {100 * worst:+.1f}% without weight drop (target "
                  f"within 10%: {'met' if worst <= 0.10 else 'not met'}); with it, what the masked copies cost."]
    sy, sa = s.get("syncs"), s.get("sampling")
    if sy:
        events = ", ".join(f"{k} x{v}" for k, v in sy["events"].items()) or "none"
        lines += ["", f"Host synchronisations in the training loop (torch profiler, {sy['steps']} steps): "
                  f"{sy['per_sync_every']:.1f} per {SYNC_EVERY} steps ({events})."]
    else:
        lines += ["", f"Host synchronisations: {failed}."]
    lines += ["", f"Sampling the bundled 1 x 512: one stream {sa['one']:,.0f} chars/s; 1,024 streams {sa['batch1024']:,.0f} "
              f"chars/s = {sa['ratio']:.2f} of the {sa['bound']:,.0f} chars/s the measured fp32 matmul rate "
              f"({s['flops'] / 1e12:.1f} TFLOP/s) allows (sampling runs in plain fp32, TF32 off in cuDNN too: "
              "runtime.plain_fp32)." if sa else f"Sampling: {failed}."]
    return lines


def load_gpu_results(path: Path = GPU_JSON) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def rewrite_results(data: dict, results: Path = RESULTS) -> None:
    """Replace the GPU section (the last one) of RESULTS.md."""
    text = results.read_text() if results.exists() else "# charrnn benchmark results\n\n## GPU\n"
    head = text.split("\n## GPU\n", 1)[0].rstrip("\n")
    results.write_text(head + "\n\n" + "\n".join(gpu_section(data)) + "\n")


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", help="speed, quality (default: both)")
    ap.add_argument("--corpus", type=Path, help="default: tinyshakespeare (../shared/corpora/, or carried into "
                    "benchmarks/data/); the speed part alone takes the bundled corpora/shakespeare.txt without it")
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    ap.add_argument("--copy-to", type=Path, help="also copy the results there as each part ends (the device tool's $OUT)")
    ap.add_argument("--smoke", action="store_true", help="every part at toy sizes, results under --work: checks the script")
    ap.add_argument("--device", default="cuda", help="with --smoke, any device (cpu checks the script without a GPU)")
    args = ap.parse_args()
    if set(args.parts) - {"speed", "quality"}:
        ap.error(f"parts are speed and quality, not {' '.join(args.parts)}")
    if args.device != "cuda" and not args.smoke:
        ap.error("the figures are a GPU's: --device other than cuda only with --smoke")
    if args.corpus is None:
        args.corpus = next((p for p in (TINY, CARRIED) if p.exists()), None)
        if args.corpus is None and "quality" in (args.parts or ["quality"]) and not args.smoke:
            # The target is tinyshakespeare's: five minutes on another corpus would measure nothing that is asked.
            ap.error(f"the quality part's target is tinyshakespeare's, and there is none at {TINY} or {CARRIED}: "
                     "copy it into benchmarks/data/ (and carry it to a GPU machine), or give --corpus")
        args.corpus = args.corpus or HERE.parent / "corpora" / "shakespeare.txt"
    return args


def main() -> None:
    args = arguments()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-bench: no CUDA GPU here; nothing measured", file=sys.stderr)
        return
    plan = Plan.smoke(args.device) if args.smoke else Plan()
    args.work.mkdir(parents=True, exist_ok=True)
    # A smoke run must not replace the real figures: it writes beside its own runs.
    results, gpu_json = (args.work / RESULTS.name, args.work / GPU_JSON.name) if args.smoke else (RESULTS, GPU_JSON)
    if args.smoke and not results.exists() and RESULTS.exists():
        shutil.copyfile(RESULTS, results)
    data = load_gpu_results(gpu_json) or {}
    data.update(machine=machine(), date=time.strftime("%Y-%m-%d"))
    for part in args.parts or ["speed", "quality"]:
        data[part] = speed(args.corpus, args.work, plan) if part == "speed" else gpu_quality(args.corpus, args.work, plan)
        gpu_json.write_text(json.dumps(data, indent=1) + "\n")
        rewrite_results(data, results)
        print(f"gpu-bench: {part} done; wrote {gpu_json} and the GPU section of {results}", file=sys.stderr)
        if args.copy_to:
            args.copy_to.mkdir(parents=True, exist_ok=True)
            for f in (gpu_json, results):
                shutil.copyfile(f, args.copy_to / f.name)


if __name__ == "__main__":
    main()
