"""Fine-tuning from the bundled base against training from scratch, on small corpora the base never read.

    python benchmarks/finetune_set.py            # part of `make bench`; ~7 minutes on 2 cores
    python benchmarks/finetune_set.py prose      # one corpus; the other rows are kept

Each small corpus (20-100 KB) is cut from the benchmark set (benchmarks/corpus_set.py builds it):
the newest State of the Union prose, a list of names (makemore's, one a line), and Python source,
whose braces, pipes and tildes the base's vocabulary lacks. Each is trained twice for the same
budget with default settings, `charrnn train SMALL --time 1m` and the same with `--init base`,
one after the other (they share the cores they are timed on). Writes benchmarks/FINETUNE.md and .json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import CHARRNN, machine  # noqa: E402
from corpus_set import DATA, build  # noqa: E402

from charrnn.model.checkpoint import bundled_model, load_checkpoint  # noqa: E402
from charrnn.model.config import ModelConfig  # noqa: E402

# name -> (source file in the set, which part, train flags); cut at line ends.
SMALL = {
    "prose": ("prose/prose.txt", "tail", 80_000, []),
    "names": ("names/train.txt", "head", 60_000, ["--lines"]),
    "code": ("code/code.py.txt", "head", 80_000, []),
}
BUDGET = "1m"


def cut(name: str, work: Path) -> Path:
    src, part, size, _ = SMALL[name]
    text = (DATA / src).read_text(encoding="utf-8")
    piece = text[-size:] if part == "tail" else text[:size]
    piece = piece[piece.index("\n") + 1:] if part == "tail" else piece[: piece.rindex("\n") + 1]
    path = work / f"small-{name}.txt"
    path.write_text(piece, encoding="utf-8")
    return path


def run_one(small: Path, flags: list[str], init: bool, out: Path) -> dict:
    cmd = [*CHARRNN, "train", str(small), *flags, "--time", BUDGET, "--out", str(out), "-q", "--force", "--no-plot",
           "--sample-length", "0", *(["--init", "base"] if init else [])]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(metrics, key=lambda r: r["val_loss"])
    mc = load_checkpoint(out / "best.pt")["model_config"]
    sample = subprocess.run([*CHARRNN, "sample", "-c", str(out), "--length", "200", "--seed", "1", "-q",
                             "--temperature", "0.8"] + (["-n", "6"] if "--lines" in flags else []),
                            check=True, capture_output=True, text=True).stdout
    return {"val_loss": best["val_loss"], "best_step": best["step"], "steps": metrics[-1]["step"],
            "model": f"{mc['layers']} x {mc['hidden']}, {ModelConfig(**mc).regularisation.describe()}",
            "vocab": mc["vocab_size"], "wall_s": wall, "sample": sample}


def write(path: Path, rows: dict, info: dict) -> None:
    lines = ["# Fine-tuning from the bundled base against training from scratch", "",
             f"Machine: {info['machine']['cpu']}, {info['machine']['cores']} cores, torch {info['machine']['torch']}; "
             f"{info['date']}. `charrnn train SMALL --time {BUDGET}` with defaults, and the same with `--init base`; "
             "validation as `train` holds it out (the last 10%, or 10% of the names).", "",
             "| corpus | chars | scratch: val nats/char | model | fine-tuned: val nats/char | new chars | gain |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        s, t = r["scratch"], r["tuned"]
        lines.append(f"| {name} | {r['chars']:,} | {s['val_loss']:.4f} | {s['model']} | {t['val_loss']:.4f} | "
                     f"{len(r['new_chars'])} {r['new_chars']!r} | {s['val_loss'] - t['val_loss']:+.4f} |")
    lines += ["", "Samples (`charrnn sample --length 200 --temperature 0.8 --seed 1`, `-n 6` for names):", ""]
    for name, r in rows.items():
        for kind in ("scratch", "tuned"):
            lines += [f"**{name}, {'from scratch' if kind == 'scratch' else 'fine-tuned from the base'}**", "",
                      *("    " + s for s in r[kind]["sample"].rstrip("\n").splitlines()), ""]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(SMALL))
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    args = ap.parse_args()
    build([n.split("/")[0] for n in {SMALL[k][0] for k in args.names}])
    args.work.mkdir(parents=True, exist_ok=True)
    out_json = HERE / "FINETUNE.json"
    rows = json.loads(out_json.read_text())["rows"] if out_json.exists() else {}
    base_vocab = set(load_checkpoint(bundled_model())["vocab"])
    for name in args.names:
        if not (DATA / SMALL[name][0]).exists():
            print(f"  {name}: skipped (its source is not on this machine)", file=sys.stderr)
            continue
        small = cut(name, args.work)
        text = small.read_text(encoding="utf-8")
        flags = SMALL[name][3]
        rows[name] = {"chars": len(text), "new_chars": "".join(sorted(set(text) - base_vocab)),
                      "scratch": run_one(small, flags, False, args.work / f"ft-scratch-{name}"),
                      "tuned": run_one(small, flags, True, args.work / f"ft-tuned-{name}")}
        r = rows[name]
        print(f"  {name}: scratch {r['scratch']['val_loss']:.4f}, fine-tuned {r['tuned']['val_loss']:.4f}", file=sys.stderr)
    info = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    out_json.write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    write(HERE / "FINETUNE.md", rows, info)
    print(f"bench-finetune: wrote {HERE / 'FINETUNE.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
