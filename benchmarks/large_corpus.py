"""Training on a corpus larger than it is sensible to hold in memory: peak memory and encoding time.

    python benchmarks/large_corpus.py [--mb 200]

Builds a ~200 MB corpus under benchmarks/runs/ (real text, shuffled and mixed with synthetic log
lines; not committed), trains on it for a few hundred steps, resumes once (the token cache is
reused), and does the same on the bundled 5 MB corpus for comparison. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHARRNN = [sys.executable, "-m", "charrnn", "train"]
MODEL = ["--hidden", "256", "--eval-every", "100", "--sample-length", "0", "-q", "--device", "cpu"]


def build(path: Path, megabytes: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    lines = (ROOT / "corpora" / "shakespeare.txt").read_text(encoding="utf-8").splitlines()
    levels, words = ["INFO", "WARN", "DEBUG", "ERROR"], ["request", "cache", "user", "job", "disk", "retry", "token"]
    target = megabytes << 20
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            rng.shuffle(lines)
            block = "\n".join(lines[:20_000]) + "\n"
            logs = "".join(
                f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} "
                f"{rng.choice(levels)} {rng.choice(words)} id={rng.getrandbits(32):08x} took {rng.randint(1, 900)}ms\n"
                for _ in range(5_000))
            f.write(block + logs)
            written += len(block.encode()) + len(logs.encode())


def measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of a command."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    work = ROOT / "benchmarks" / "runs" / "large"
    work.mkdir(parents=True, exist_ok=True)
    big = work / f"corpus-{args.mb}mb.txt"
    if not big.exists() or big.stat().st_size < (args.mb << 20):
        build(big, args.mb)
    rows = []
    for name, corpus in (("bundled", ROOT / "corpora" / "shakespeare.txt"), (f"{args.mb} MB", big)):
        out = work / f"run-{name.replace(' ', '')}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        fresh = measured([*CHARRNN, str(corpus), "--steps", str(args.steps), "--out", str(out), *MODEL])
        resumed = measured([*CHARRNN, str(corpus), "--steps", str(args.steps + 50), "--out", str(out), "--resume", *MODEL])
        size = corpus.stat().st_size
        cache = sum(f.stat().st_size for f in (out / "corpus").glob("*.bin"))
        rows.append((name, size, cache, fresh, resumed))
        print(f"{name}: {size / 2**20:,.0f} MiB, fresh {fresh[0]:.0f} s / {fresh[1]:,.0f} MiB peak, "
              f"resumed {resumed[0]:.0f} s / {resumed[1]:,.0f} MiB", file=sys.stderr)
    print("| corpus | size | token cache | first run (encode + train) | peak memory | resumed run (cache reused) | peak memory |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, size, cache, fresh, resumed in rows:
        print(f"| {name} | {size / 2**20:,.0f} MiB | {cache / 2**20:,.0f} MiB | {fresh[0]:.0f} s | {fresh[1]:,.0f} MiB "
              f"| {resumed[0]:.0f} s | {resumed[1]:,.0f} MiB |")


if __name__ == "__main__":
    main()
