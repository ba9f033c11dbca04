"""charrnn's benchmark: speed, quality at a time budget, start-up and memory. Writes benchmarks/RESULTS.md.

    make bench                             # everything, about 20 minutes on 2 CPU cores
    python benchmarks/bench.py --quick     # short budgets, to check the script (runs/RESULTS-quick.md)

Each figure is measured in this run on this machine; the targets are issue 5's. Heavy parts run
one after another (never two at once), since they share the cores they are timing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from charrnn.api.loading import load_model  # noqa: E402
from charrnn.model.cells import get_cell  # noqa: E402
from charrnn.model.config import ModelConfig  # noqa: E402
from charrnn.model.runtime import autocast, autocast_dtype, available_cores, pick_device, set_threads, synchronize  # noqa: E402
from charrnn.text.data import Vocab, read_text  # noqa: E402
from charrnn.training.config import STREAMS, TrainConfig  # noqa: E402
from charrnn.training.describe import describe  # noqa: E402
from charrnn.training.sizing import count_params  # noqa: E402
from charrnn.training.train import train  # noqa: E402
from charrnn.training.trainer import Reporter  # noqa: E402
from charrnn.writing.config import SampleConfig  # noqa: E402
from charrnn.writing.sample import generate  # noqa: E402

# The console script users run (python -m charrnn adds runpy's start-up).
_SCRIPT = Path(sys.executable).with_name("charrnn")
CHARRNN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "charrnn"]
TINY = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
LN2 = math.log(2)


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": available_cores(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "gpu": gpu, "os": platform.platform()}


def matmul_flops(device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """The machine's own fp32 matrix-product rate (FLOP/s) on square n x n matrices: the bound for the model's arithmetic."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    synchronize(device)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 * reps / best


class BareStep:
    """The same arithmetic as a charrnn training step, written plainly: embedding, nn.LSTM (built
    with the model's arguments, so a deep one keeps its own dropout between layers), linear head,
    cross-entropy, backward, AdamW, in the precision charrnn's step uses (autocast, and loss scaling for
    fp16). None of what charrnn adds: no dropout on embeddings or outputs, no clipping, state carry,
    schedule or bookkeeping."""

    def __init__(self, vocab_size: int, mc: ModelConfig, cfg: TrainConfig, device):
        torch.manual_seed(0)
        self.device = device
        self.embed = torch.nn.Embedding(vocab_size, mc.embed).to(device)
        self.lstm = torch.nn.LSTM(mc.embed, mc.hidden, num_layers=mc.layers, batch_first=True,
                                  dropout=mc.dropout if mc.layers > 1 else 0.0).to(device)
        self.head = torch.nn.Linear(mc.hidden, vocab_size).to(device)
        params = [*self.embed.parameters(), *self.lstm.parameters(), *self.head.parameters()]
        self.opt = torch.optim.AdamW(params, lr=1e-3)
        self.data = torch.randint(0, vocab_size, (cfg.batch_size, cfg.seq_len + 1), device=device)
        self.amp = autocast_dtype(cfg.precision, device)
        self.scaler = torch.amp.GradScaler(device.type) if self.amp == torch.float16 else None

    def __call__(self) -> float:
        t0 = time.perf_counter()
        x, y = self.data[:, :-1], self.data[:, 1:]
        with autocast(self.device, self.amp):
            h, _ = self.lstm(self.embed(x))
            logits = self.head(h)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        synchronize(self.device)
        return time.perf_counter() - t0


class Alternate(Reporter):
    """Times charrnn's own training steps (train(), loop overhead included, evaluations not) and,
    between every two of them, one bare step: the two are measured side by side, step by step, so
    a machine whose speed drifts (shared cores) slows both alike."""

    def __init__(self, bare: BareStep):
        self.bare = bare
        self.ours: list[float] = []
        self.theirs: list[float] = []
        self.last: float | None = None

    def step(self, progress, fraction, train_loss, chars_per_s, lr) -> None:
        # Each side waits for its own work: charrnn's step is queued on a GPU, and without this sync the bare
        # step's own sync would wait for it and charge it to the bare side (a no-op on the CPU).
        synchronize(self.bare.device)
        now = time.perf_counter()
        if self.last is not None:
            self.ours.append(now - self.last)
        self.theirs.append(self.bare())
        self.last = time.perf_counter()


def compare_steps(docs, vocab_size: int, given: dict, cfg: TrainConfig, steps: int, skip: int, out: Path,
                  device) -> tuple[float, float]:
    """Median seconds per step: charrnn's loop and the bare step, interleaved."""
    mc = ModelConfig(vocab_size=vocab_size, **given)
    clock = Alternate(BareStep(vocab_size, mc, cfg, device))
    train(docs, given, TrainConfig(**{**cfg.to_dict(), "steps": steps, "eval_every": 10**9, "val_frac": 0.01}),
          out, reporter=clock, sample_every_eval=0)
    return statistics.median(clock.ours[skip:]), statistics.median(clock.theirs[skip:])


def training_speed(docs, device_name: str, quick: bool, work: Path) -> list[dict]:
    rows = []
    device = pick_device(device_name)
    vocab_size = len(Vocab.from_texts(docs))
    cfg = TrainConfig(device=device_name, batch_size=STREAMS)  # the shape compared: 32 x 64
    chars = cfg.batch_size * cfg.seq_len
    for layers, hidden in ((1, 512), (2, 512)):
        given = {"layers": layers, "hidden": hidden}
        o, b = compare_steps(docs, vocab_size, given, cfg, 30 if quick else (150 if layers == 1 else 80), 5,
                             work / f"speed-{layers}x{hidden}", device)
        rows.append({"model": f"{layers} x {hidden}", "params": count_params(ModelConfig(vocab_size=vocab_size, **given)),
                     "charrnn_chars_per_s": chars / o, "bare_chars_per_s": chars / b, "overhead": o / b - 1})
        print(f"  train {layers}x{hidden}: charrnn {chars / o:,.0f} chars/s, bare {chars / b:,.0f}, "
              f"overhead {100 * (o / b - 1):+.1f}%", file=sys.stderr)
    # --compile, against the same bare step (its first steps compile, so skip more).
    o, b = compare_steps(docs, vocab_size, {"layers": 1, "hidden": 512}, replace(cfg, compile=True), 30 if quick else 100,
                         20, work / "speed-compile", device)
    rows.append({"model": "1 x 512, `--compile`", "params": rows[0]["params"], "charrnn_chars_per_s": chars / o,
                 "bare_chars_per_s": chars / b, "overhead": o / b - 1, "optional": True})
    print(f"  train 1x512 --compile: {chars / o:,.0f} chars/s ({100 * (o / b - 1):+.1f}%)", file=sys.stderr)
    return rows


def lstm_flops_per_char(mc: dict, vocab_size: int) -> float:
    """Multiply-adds x 2 per generated character: every layer's gate products plus the output head."""
    gates = get_cell(mc["cell"]).gates
    f = sum(2 * gates * mc["hidden"] * ((mc["embed"] if i == 0 else mc["hidden"]) + mc["hidden"]) for i in range(mc["layers"]))
    return f + 2 * mc["hidden"] * vocab_size


def sampling_rate(model, vocab, streams: int, length: int, seeds: int, device) -> float:
    """The best characters per second of `seeds` seeded runs writing `streams` samples of `length` at temperature 1,
    as one batch (the device's queued work waited for)."""
    best = 0.0
    for seed in range(seeds):
        cfg = SampleConfig(length=length, num_samples=streams, seed=seed, temperature=1.0)
        t0 = time.perf_counter()
        n = sum(1 for _, ch in generate(model, vocab, "", cfg, device) if ch is not None)
        synchronize(device)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def sampling_speed(ckpt: Path, device, flops: float, quick: bool) -> dict:
    model, vocab, raw = load_model(ckpt, device)
    out = {streams: sampling_rate(model, vocab, streams, length, 5, device)
           for streams, length in ((1, 3000 if quick else 10000), (64, 500 if quick else 1000))}
    per_char = lstm_flops_per_char(raw["model_config"], len(vocab))
    bound = flops / per_char
    print(f"  sample: 1 stream {out[1]:,.0f} chars/s, 64 streams {out[64]:,.0f} (bound {bound:,.0f})", file=sys.stderr)
    return {"one": out[1], "batch64": out[64], "flops_per_char": per_char, "bound": bound, "ratio": out[64] / bound}


def run_measured(cmd: list[str], **kw) -> tuple[int, float, float]:
    """Run a command; return its exit code, wall seconds and peak resident memory (MiB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, **kw)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, time.perf_counter() - t0, usage.ru_maxrss / 1024


def quality(corpus: Path, budget: str, work: Path, device: str = "auto") -> dict:
    out = work / f"quality-{budget}"
    code, wall, rss = run_measured([*CHARRNN, "train", str(corpus), "--time", budget, "--out", str(out), "-q",
                                    "--device", device], stdout=subprocess.DEVNULL)
    if code != 0:
        raise SystemExit(f"bench: training for {budget} failed with exit {code}")
    row = quality_row(out, budget, wall, rss)
    print(f"  quality {budget}: val {row['val_loss']:.4f} nats/char = {row['val_bpc']:.4f} bpc, {row['model']}",
          file=sys.stderr)
    (out / "bench.json").write_text(json.dumps(row))
    return row


def quality_row(out: Path, budget: str, wall: float, rss: float) -> dict:
    """A quality run's figures: the best weights on the whole validation split (the evaluations during a --time run
    score a fixed sample of it, which chooses them), and the share of the run spent watching."""
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(metrics, key=lambda r: r["val_loss"])
    ck = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["progress"]
    whole = ck["progress"].get("final_val", float("nan"))
    val = whole if whole == whole else best["val_loss"]
    tc = ck["train_config"]
    return {"budget": budget, "val_loss": val, "val_bpc": val / LN2, "sample_val_loss": best["val_loss"],
            "watch_share": last.get("watch_s", 0.0) / last["elapsed"], "step": best["step"],
            "steps": metrics[-1]["step"], "chars_per_s": metrics[-1]["chars_per_s"], "wall_s": wall, "peak_mib": rss,
            "model": dict(describe(ck))["model"],
            "params": sum(t.numel() for t in ck["model"].values() if t.is_floating_point()),
            "train": f"batch {tc['batch_size']} x seq {tc['seq_len']}, lr {tc['lr']:g}, warm-up {tc['warmup']}, "
                     f"cosine to {tc['min_lr_frac']:g} x lr, weight decay {tc['weight_decay']:g}, clip {tc['clip']:g}",
            "out": str(out)}


def quality_or_reuse(corpus: Path, budget: str, work: Path, reuse: bool) -> dict:
    saved = work / f"quality-{budget}" / "bench.json"
    if reuse and saved.exists():
        print(f"  quality {budget}: reusing {saved.parent}", file=sys.stderr)
        return json.loads(saved.read_text())
    return quality(corpus, budget, work)


HELP_RATIO = 0.3 / 0.18  # issue 21: --help under 0.3 s on a CPU where `import typer` takes 0.18 s


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def startup(ckpt: Path) -> dict:
    """--help's wall time, alone and as a ratio to `python -c "import typer"` timed alternately with it (the
    ratio travels between machines of different speeds); the first sampled character; sampling's peak memory."""
    helps, typers = [], []
    for _ in range(7):
        helps.append(_wall([*CHARRNN, "--help"]))
        typers.append(_wall([sys.executable, "-c", "import typer"]))
    ratio = statistics.median(h / t for h, t in zip(helps, typers, strict=True))
    firsts = []
    for _ in range(5):
        t0 = time.perf_counter()
        p = subprocess.Popen([*CHARRNN, "sample", "-c", str(ckpt), "--length", "100000", "-q", "--seed", "1"],
                             stdout=subprocess.PIPE)
        p.stdout.read(1)
        firsts.append(time.perf_counter() - t0)
        p.kill()
        p.wait()
    _, _, rss = run_measured([*CHARRNN, "sample", "-c", str(ckpt), "--length", "5000", "-n", "64", "-q", "--seed", "1"],
                             stdout=subprocess.DEVNULL)
    print(f"  start-up: --help {min(helps):.2f} s ({ratio:.2f} x import typer), first char {min(firsts):.2f} s; "
          f"sampling peak {rss:.0f} MiB", file=sys.stderr)
    return {"help_s": statistics.median(helps), "help_ratio": ratio, "typer_s": statistics.median(typers),
            "first_char_s": statistics.median(firsts), "sample_peak_mib": rss}


def mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def write_results(path: Path, r: dict) -> None:
    from gpu_bench import gpu_section, load_gpu_results  # it imports this module: not at the top

    lines = [*header_lines(r), *target_lines(r), *throughput_lines(r["speed"]), *quality_lines(r), *sampling_lines(r),
             *startup_lines(r), *gpu_section(load_gpu_results())]
    path.write_text("\n".join(lines) + "\n")


def header_lines(r: dict) -> list[str]:
    m = r["machine"]
    return [
        "# charrnn benchmark results",
        "",
        f"Written by `make bench` ({r['wall_min']:.1f} minutes"
        + ("; the quality runs reused from the previous full run, `--reuse-quality`" if r.get("reused_quality") else "")
        + f") on {r['date']}. Machine: {m['cpu']}, "
        f"{m['cores']} cores available, {m['threads']} torch threads, GPU: {m['gpu'] or 'none'}; "
        f"torch {m['torch']}, Python {m['python']}, {m['os']}.",
        f"Corpus: `{r['corpus']}` ({r['corpus_chars']:,} characters; the last 10% is the validation text).",
        f"Measured matrix-product rate (fp32, 2048 x 2048): **{r['flops'] / 1e9:.0f} GFLOP/s**.",
        "",
    ]


def target_lines(r: dict) -> list[str]:
    sp, sa, st = r["speed"], r["sampling"], r["startup"]
    judged_rows = [row for row in sp if not row.get("optional")]
    worst_overhead = max(row["overhead"] for row in judged_rows)
    overheads = ", ".join(f"{row['model']}: {100 * row['overhead']:+.1f}%" for row in judged_rows)
    main = {row["budget"]: row for row in r["quality"]}[r["main_budget"]]
    target = 1.40  # issue 12 (issue 5's was 1.45)
    judged = mark(main["val_loss"] <= target) if r["main_budget"] == "10m" else "not judged (--quick)"
    return [
        "## Targets", "", "| target | measured | |", "| --- | --- | --- |",
        f"| training step within 10% of a bare nn.LSTM step | {overheads} | {mark(worst_overhead <= 0.10)} |",
        f"| `--time {r['main_budget']}` val loss <= {target:.2f} nats/char "
        f"| {main['val_loss']:.4f} nats/char ({main['val_bpc']:.4f} bpc) | {judged} |",
        f"| sampling, one stream >= 3,000 chars/s | {sa['one']:,.0f} chars/s | {mark(sa['one'] >= 3000)} |",
        f"| sampling, 64 streams >= half the matmul bound | {sa['batch64']:,.0f} chars/s = {sa['ratio']:.2f} x bound "
        f"({sa['bound']:,.0f}) | {mark(sa['ratio'] >= 0.5)} |",
        f"| `charrnn --help` <= {HELP_RATIO:.2f} x `import typer` (0.3 s where that takes 0.18 s) "
        f"| {st.get('help_ratio', math.nan):.2f} x ({st['help_s']:.2f} s against {st.get('typer_s', math.nan):.2f} s) "
        f"| {mark(st.get('help_ratio', math.inf) <= HELP_RATIO)} |",
        f"| first sampled character < 2 s | {st['first_char_s']:.2f} s | {mark(st['first_char_s'] < 2)} |",
        "",
        *([f"Note: {r['note']}.", ""] if r.get("note") else []),
    ]


def throughput_lines(sp: list[dict]) -> list[str]:
    return [
        "## Training throughput (characters/s)",
        "",
        "charrnn's own loop (`train()`: dropout, clipping, carried state, schedule, progress) against the same",
        "arithmetic written plainly (embedding, `nn.LSTM` with the model's arguments, so its own dropout between",
        "layers when there are several, linear head, cross-entropy, backward, AdamW), same",
        "shape (batch 32 x seq 64), timed alternately step by step in one run (a bare step between every two",
        "of charrnn's), median step after the first 5.",
        "",
        "| model | parameters | charrnn | bare torch | overhead |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {row['model']} | {row['params']:,} | {row['charrnn_chars_per_s']:,.0f} | {row['bare_chars_per_s']:,.0f} "
          f"| {100 * row['overhead']:+.1f}% |" for row in sp),
        "",
    ]


def quality_lines(r: dict) -> list[str]:
    lines = [
        "## Quality at a time budget (default settings)",
        "",
        "The best weights scored on the whole validation split at the end (the evaluations during the run score a "
        "fixed sample of it, which chooses them; its figure beside); watching: the share of the run evaluations, "
        "samples, checkpoints and loss.png took.", "",
        "| command | val nats/char | val bpc | on the sample | model chosen | steps | train chars/s | watching | peak memory |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["quality"]:
        lines.append(f"| `charrnn train {r['corpus_name']} --time {row['budget']}` "
                     f"| {row['val_loss']:.4f} | {row['val_bpc']:.4f} | {row.get('sample_val_loss', row['val_loss']):.4f} "
                     f"| {row['model']} ({row['params']:,} params) | {row['steps']:,} (best at {row['step']:,}) "
                     f"| {row['chars_per_s']:,.0f} | {row.get('watch_share', math.nan):.1%} | {row['peak_mib']:,.0f} MiB |")
    return [*lines, "", f"Training settings: {r['quality'][-1]['train']}.", ""]


def sampling_lines(r: dict) -> list[str]:
    sa = r["sampling"]
    return ["## Sampling", "",
            f"Model of the `--time {r['main_budget']}` run, temperature 1, best of 5 seeds, timed inside a fresh process "
            "(library call, no start-up).", "",
            "| streams | chars/s |", "| --- | --- |",
            f"| 1 | {sa['one']:,.0f} |",
            f"| 64 (one batch) | {sa['batch64']:,.0f} |", "",
            f"The model costs {sa['flops_per_char'] / 1e6:.2f} MFLOP per character (gate and head products), so the "
            f"measured matrix-product rate allows at most {sa['bound']:,.0f} chars/s; 64 streams reach "
            f"{sa['ratio']:.2f} of that. State is carried from character to character; nothing is recomputed.", ""]


def startup_lines(r: dict) -> list[str]:
    st, main = r["startup"], {row["budget"]: row for row in r["quality"]}[r["main_budget"]]
    return ["## Start-up and memory", "",
            "| what | result |", "| --- | --- |",
            f"| `charrnn --help` (median of 7) | {st['help_s']:.2f} s |",
            f"| first sampled character on stdout, process start included (median of 5) | {st['first_char_s']:.2f} s |",
            f"| peak resident memory, training (`--time {r['main_budget']}`) | {main['peak_mib']:,.0f} MiB |",
            f"| peak resident memory, sampling 64 x 5,000 chars | {st['sample_peak_mib']:,.0f} MiB |", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short budgets and few repeats: checks the script, not the targets")
    ap.add_argument("--corpus", type=Path, default=TINY if TINY.exists() else ROOT / "corpora" / "shakespeare.txt")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/RESULTS.md (--quick: runs/RESULTS-quick.md)")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "runs")
    ap.add_argument("--reuse-quality", action="store_true",
                    help="take the quality runs already in --work instead of training them again (the rest is measured)")
    ap.add_argument("--sampling-only", nargs=2, metavar=("CKPT", "FLOPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sampling_only:
        set_threads(None)
        result = sampling_speed(Path(args.sampling_only[0]), torch.device("cpu"), float(args.sampling_only[1]), args.quick)
        print(json.dumps({str(k): v for k, v in result.items()}))
        return
    if args.out is None:  # a --quick run checks the script; it must not replace the real results
        args.out = args.work / "RESULTS-quick.md" if args.quick else ROOT / "benchmarks" / "RESULTS.md"
    t_start = time.perf_counter()
    set_threads(None)
    cpu = torch.device("cpu")
    text = read_text(args.corpus)
    docs = [text]
    budgets = ["20s", "1m"] if args.quick else ["2m", "10m"]
    r = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "corpus": str(args.corpus), "corpus_name": args.corpus.name,
         "corpus_chars": len(text), "main_budget": budgets[-1]}
    print(f"bench: {r['machine']['cpu']}, {r['machine']['cores']} cores; corpus {args.corpus}", file=sys.stderr)
    r["flops"] = matmul_flops(cpu)
    r["speed"] = training_speed(docs, "cpu", args.quick, args.work)
    r["quality"] = [quality_or_reuse(args.corpus, b, args.work, args.reuse_quality) for b in budgets]
    r["reused_quality"] = args.reuse_quality
    main_ckpt = Path(r["quality"][-1]["out"]) / "best.pt"
    # In a fresh process: this one has trained and compiled (inductor's workers, allocator state).
    r["sampling"] = json.loads(subprocess.run(
        [sys.executable, __file__, "--sampling-only", str(main_ckpt), str(r["flops"])] + (["--quick"] if args.quick else []),
        check=True, capture_output=True, text=True).stdout)
    r["startup"] = startup(main_ckpt)
    r["wall_min"] = (time.perf_counter() - t_start) / 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, r)
    (args.out.with_suffix(".json")).write_text(json.dumps(r, indent=1, default=str) + "\n")
    print(f"bench: wrote {args.out} ({r['wall_min']:.1f} minutes)", file=sys.stderr)


if __name__ == "__main__":
    main()
