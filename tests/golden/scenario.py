"""The golden scenario: a fixed-seed run of every command, whose output must not change.

Recorded once with the code before the restructuring of issue 11 (`python tests/golden/scenario.py --write`);
tests/test_golden.py runs it again and compares byte for byte, timings and paths aside. The old
code's checkpoints (`old-*.pt`) are kept here too: the new code must load, sample and resume them.

Floating-point results depend on the CPU and on torch's version: on the platform the goldens were
recorded on (platform.json) the comparison is byte for byte, on any other CPU within the tolerances
of compare.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # tests/: inprocess.py
COMMON = ["--threads", "1"]
# AdamW, given: Muon (the default for so few passes) runs its Newton-Schulz products in bf16 where the CPU has bf16
# kernels and in fp32 elsewhere, so its runs part between CPUs by more than the goldens' tolerances (tests/test_optim.py
# tests Muon itself).
TRAIN = ["--device", "cpu", "--batch-size", "8", "--seq-len", "24", "--lr", "0.01", "--warmup", "5", "--seed", "7", "--no-plot",
         "--sample-length", "30", "--optimizer", "adamw", "-q", *COMMON]
RUNS = {  # name -> (corpus, flags)
    "lstm": ("play.txt", ["--layers", "2", "--hidden", "32", "--embed", "12", "--dropout", "0.1", "--steps", "40",
                          "--eval-every", "20"]),
    "gru": ("names.txt", ["--lines", "--cell", "gru", "--layers", "1", "--hidden", "32", "--embed", "12",
                          "--dropout", "0.0", "--steps", "40", "--eval-every", "20"]),
    "rnn": ("play.txt", ["--cell", "rnn", "--layers", "2", "--hidden", "24", "--embed", "12", "--dropout", "0.05",
                         "--steps", "30", "--eval-every", "15"]),
}
RESUME = ["--device", "cpu", "-q", "--no-plot", "--sample-length", "30", *COMMON]
PRIMES = {"lstm": "ROMEO:", "gru": "ma", "rnn": "The "}
SHORT = {"lstm": "short.txt", "gru": "one.txt", "rnn": "short.txt"}  # text in the run's vocabulary


def mode(flags: list[str]) -> list[str]:
    """The flags that cut the corpus into documents, which a resume must repeat."""
    return [f for f in flags if f == "--lines"]


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")  # what changes float results


def platform() -> dict:
    """What the goldens' exact floats depend on: torch's version, the instruction sets its kernels use, the CPU."""
    import torch

    model, flags = "", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(), "machine": os.uname().machine,
            "model": model, "isa": [f for f in ISA_FLAGS if f in flags],
            "caps": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ}}


def charrnn(*args, cwd: Path, stdin: str | None = None) -> str:
    """Run one command in this process (tests/inprocess.py; about a second and a half faster than a subprocess
    each) on one torch thread, and return its stdout."""
    import torch
    from inprocess import invoke

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as --threads 1 does, for the commands that have no such flag
    try:
        r = invoke(*args, cwd=cwd, input=stdin)
    finally:
        torch.set_num_threads(threads)
    if r.returncode != 0:
        raise AssertionError(f"charrnn {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def metrics(path: Path) -> str:
    """metrics.jsonl with the timings (elapsed, chars_per_s) blanked."""
    out = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.update(elapsed=0, chars_per_s=0)
        out.append(json.dumps(record))
    return "\n".join(out) + "\n"


def info(text: str) -> str:
    """`info` without its title (the path) and the training-time row."""
    return "\n".join(line for line in text.splitlines()[1:] if "training time" not in line) + "\n"


def make_corpora(work: Path) -> None:
    play = (ROOT / "corpora" / "shakespeare.txt").read_text(encoding="utf-8")[:20_000]
    (work / "play.txt").write_text(play, encoding="utf-8")
    names = (ROOT / "corpora" / "names.txt").read_text(encoding="utf-8").splitlines()
    (work / "names.txt").write_text("\n".join(names[:1500]) + "\n", encoding="utf-8")
    (work / "few.txt").write_text("\n".join(names[1500:1520]) + "\n", encoding="utf-8")
    (work / "short.txt").write_text(play[-300:], encoding="utf-8")
    (work / "one.txt").write_text(names[1600], encoding="utf-8")


SAMPLES = {  # use -> (prime or None for the run's own, flags)
    "sample": (None, ["--seed", "3", "-n", "3", "--length", "60"]),
    "sample-json": ("", ["--seed", "4", "-n", "12", "--length", "40", "--top-k", "5", "--temperature", "0.8", "--json"]),
    "sample-top-p": ("", ["--seed", "5", "-n", "2", "--length", "50", "--top-p", "0.9"]),
    "sample-greedy": (None, ["--greedy", "--length", "50"]),
}


def sample_prime(key: str) -> str:
    """The prime of the sample golden `key` ('lstm.sample', 'old-gru.sample-greedy', ...)."""
    name, use = key.removeprefix("old-").split(".")
    given = SAMPLES[use][0]
    return PRIMES[name] if given is None else given


def uses(work: Path, name: str, ckpt: str, watch=None, prefix: str = "") -> dict[str, str]:
    """Every read-only command on one checkpoint, named prefix + name + use. watch(key), when given, is a
    context the sample commands run in (compare.DrawWatch.watching)."""
    c = ["-c", ckpt]
    corpus, short = RUNS[name][0], SHORT[name]
    out = {}
    for use, (_, flags) in SAMPLES.items():
        key = f"{prefix}{name}.{use}"
        prime = sample_prime(key)
        with watch(key) if watch else contextlib.nullcontext():
            out[key] = charrnn("sample", *c, *flags, *(["--prime", prime] if prime else []), "-q", *COMMON, cwd=work)
    return out | {f"{prefix}{k}": v for k, v in {
        f"{name}.eval": charrnn("eval", *c, corpus, short, "--device", "cpu", *COMMON, cwd=work),
        f"{name}.eval-json": charrnn("eval", *c, corpus, "--json", "--device", "cpu", *COMMON, cwd=work),
        f"{name}.score": charrnn("score", *c, "few.txt", *COMMON, cwd=work),
        f"{name}.score-json": charrnn("score", *c, "few.txt", "--json", *COMMON, cwd=work),
        f"{name}.inspect-json": charrnn("inspect", *c, short, "--json", cwd=work),
        f"{name}.inspect": charrnn("inspect", *c, short, cwd=work),
        f"{name}.inspect-find": charrnn("inspect", *c, short, "--find", "newline", cwd=work),
        f"{name}.inspect-neuron": charrnn("inspect", *c, short, "--neuron", "3", "--layer", "0", cwd=work),
        f"{name}.info": info(charrnn("info", *c, cwd=work)),
    }.items()}


def run(work: Path, old: Path = HERE, watch=None) -> dict[str, str]:
    """Train every run of RUNS in `work`, use it, and resume the old code's checkpoints from `old`
    (watch: as uses())."""
    work.mkdir(parents=True, exist_ok=True)
    make_corpora(work)
    out: dict[str, str] = {}
    for name, (corpus, flags) in RUNS.items():
        charrnn("train", corpus, *flags, *TRAIN, "--out", f"runs/{name}", cwd=work)
        out[f"{name}.metrics"] = metrics(work / "runs" / name / "metrics.jsonl")
        out.update(uses(work, name, f"runs/{name}/best.pt", watch))
        charrnn("train", corpus, *mode(flags), "--resume", "--steps", "60", *RESUME,
                "--out", f"runs/{name}", cwd=work)
        out[f"{name}.resumed-metrics"] = metrics(work / "runs" / name / "metrics.jsonl")
    for name, (corpus, flags) in RUNS.items():  # the old code's last.pt: used, then resumed, by this code
        run_dir = work / "old" / name
        run_dir.mkdir(parents=True)
        shutil.copy(old / f"old-{name}.pt", run_dir / "last.pt")
        out.update(uses(work, name, f"old/{name}/last.pt", watch, prefix="old-"))
        charrnn("train", corpus, *mode(flags), "--resume", "--steps", "60", *RESUME,
                "--out", f"old/{name}", cwd=work)
        out[f"old-{name}.resumed-metrics"] = metrics(run_dir / "metrics.jsonl")
    return out


def write(work: Path, keep_old: bool = False) -> None:
    """Record the goldens: train once to make the old-code checkpoints (unless keep_old: the old code's stay,
    and the outputs are recorded anew, say on another CPU), then run the whole scenario."""
    make_corpora(work)
    for name, (corpus, flags) in RUNS.items():
        if not keep_old:
            charrnn("train", corpus, *flags, *TRAIN, "--out", f"first/{name}", cwd=work)
            shutil.copy(work / "first" / name / "last.pt", HERE / f"old-{name}.pt")
    outputs = run(work / "scenario")
    (HERE / "outputs.json").write_text(json.dumps(outputs, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                                       encoding="utf-8")
    (HERE / "platform.json").write_text(json.dumps(platform()) + "\n")


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] not in (["--write"], ["--write", "--keep-old"]):
        sys.exit("usage: python tests/golden/scenario.py --write [--keep-old]   (records the goldens: only for a deliberate "
                 "change; --keep-old keeps the old code's checkpoints)")
    with tempfile.TemporaryDirectory() as d:
        write(Path(d), keep_old="--keep-old" in sys.argv)
