"""The optimiser, measured: AdamW's betas and Muon against the default, time-matched and step-matched.

    python benchmarks/optimiser_study.py                     # every corpus and variant, 2 seeds (~50 min on 2 cores)
    python benchmarks/optimiser_study.py --corpora names --budget 5m
    python benchmarks/optimiser_study.py --baseline "defaults (by budget)" --variants "ramp 16-64 streams, defaults"

For each corpus the baseline run (--baseline; AdamW, betas 0.9/0.99, unless named) goes first and fixes the model
(the size and regularisation `--time` chose for it), which every variant then trains with, so only the optimiser
(or the streams) differs;
variants alternate seed by seed, so the machine's drift falls on all alike. Time-matched: the best weights on the
whole validation split at the end of the same budget. Step-matched: the validation curve (the fixed sample
evaluations score) at the last step the slower of the two reached, interpolated. Writes benchmarks/OPTIMISER.md
and OPTIMISER.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from charrnn.text.data import train_length

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import CHARRNN, machine  # noqa: E402
from corpus_set import DATA  # noqa: E402

SHAKESPEARE = HERE.parent.parent / "shared" / "corpora" / "tinyshakespeare.txt"
CORPORA = {  # name -> (files, flags, test file scored with eval --lines or None)
    "tinyshakespeare": ([SHAKESPEARE], [], None),
    "names": ([DATA / "names" / "train.txt"], ["--lines"], DATA / "names" / "test.txt"),
    "prose": ([DATA / "prose" / "prose.txt"], [], None),
}
VARIANTS = {
    "adamw 0.9/0.99 (default)": ["--optimizer", "adamw", "--beta1", "0.9"],  # the defaults before Muon (by budget)
    "adamw 0/0.99": ["--optimizer", "adamw", "--beta1", "0"],
    "muon whole, 5 NS": ["--optimizer", "muon"],
    "muon per gate, 5 NS": ["--optimizer", "muon-gates"],
    "muon whole, 3 NS": ["--optimizer", "muon", "--ns-steps", "3"],
    "defaults (by budget)": [],
    "ramp 16-64 streams, defaults": ["--batch-size", "64", "--batch-ramp", "16"],
}


def run(name: str, variant: str, seed: int, budget: str, pinned: list[str], work: Path) -> dict:
    files, flags, test = CORPORA[name]
    out = work / f"opt-{name}-{budget}-{seed}-{variant.replace(' ', '_').replace('/', '-')}"
    cmd = [*CHARRNN, "train", *map(str, files), *flags, "--time", budget, "--seed", str(seed),
           "--out", str(out), "-q", "--force", "--patience", "0", *pinned, *VARIANTS[variant]]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    prog, mc = last["progress"], last["model_config"]
    row = {"corpus": name, "variant": variant, "seed": seed, "budget": budget, "final_val": prog["final_val"],
           "steps": prog["step"], "curve": [(m["step"], m["val_loss"]) for m in metrics], "out": str(out),
           "model": ["--layers", str(mc["layers"]), "--hidden", str(mc["hidden"]), "--dropout", str(mc["dropout"]),
                     "--weight-drop", str(mc["weight_drop"])]}
    if not np.isfinite(row["final_val"]):
        row["final_val"] = min(v for _, v in row["curve"])
    if prog.get("final_chars") and not flags:  # the run's end scored a sample sized by its own speed: score the same
        row["final_val"] = held_out_score(out, files[0], work)  # text for every run (a book's held-out tail)
    if test is not None:
        scored = subprocess.run([*CHARRNN, "eval", "-c", str(out), str(test), "--json"], check=True, capture_output=True,
                                text=True).stdout.strip().splitlines()[-1]
        row["test"] = json.loads(scored)["nats_per_char"]
    print(f"  {name} {variant} seed {seed}: val {row['final_val']:.4f}" + (f" test {row['test']:.4f}" if test else "")
          + f", {row['steps']:,} steps", file=sys.stderr)
    return row


def held_out_score(run_dir: Path, book: Path, work: Path) -> float:
    """best.pt's nats/char on the book's held-out tail (the last 10%, as training held it out), by `charrnn eval`."""
    text = book.read_text(encoding="utf-8")
    tail = work / f"heldout-{book.stem}.txt"
    if not tail.exists():
        tail.write_text(text[train_length(len(text), 0.1) :], encoding="utf-8")
    scored = subprocess.run([*CHARRNN, "eval", "-c", str(run_dir / "best.pt"), str(tail), "--json"], check=True,
                            capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(scored)["nats_per_char"]


def at_step(curve: list, step: int) -> float:
    steps, vals = zip(*curve, strict=True)
    return float(np.interp(step, steps, vals))


def write(rows: list[dict], path: Path, info: dict) -> None:
    lines = ["# The optimiser, measured", "",
             f"Machine: {info['machine']['cpu']}, {info['machine']['cores']} cores, torch {info['machine']['torch']}; "
             f"{info['date']}. `python benchmarks/optimiser_study.py`: each corpus's default run fixes the model, every "
             "variant trains it for the same `--time` with `--patience 0`, seeds alternating. Time-matched: the best "
             "weights on the whole validation split at the end (names: makemore's test split too). Step-matched: the "
             "validation sample's curve at the last step the slower run reached, against the default's at that step.",
             "", "| corpus | budget | variant | val, time-matched (mean of seeds) | test | steps | step-matched val "
             "(variant vs default) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for (name, budget) in dict.fromkeys((r["corpus"], r["budget"]) for r in rows):
        group = [r for r in rows if r["corpus"] == name and r["budget"] == budget]
        baseline = group[0]["variant"]  # the run that fixed the model: what the others are matched against
        for variant in dict.fromkeys(r["variant"] for r in group):
            mine = [r for r in group if r["variant"] == variant]
            base = [r for r in group if r["variant"] == baseline] or [r for r in group if r["variant"] == mine[0]["variant"]]
            matched = []
            for r in mine:
                b = next((x for x in base if x["seed"] == r["seed"]), None)
                if b is not None:  # the baseline's run of that seed (it may not have been run yet)
                    step = min(r["steps"], b["steps"])
                    matched.append((at_step(r["curve"], step), at_step(b["curve"], step)))
            test = f"{np.mean([r['test'] for r in mine]):.4f}" if "test" in mine[0] else ""
            each = ", ".join(f"{r['final_val']:.4f}" for r in mine)
            lines.append(f"| {name} | {budget} | {variant} | {np.mean([r['final_val'] for r in mine]):.4f} "
                         f"({each}) | {test} | "
                         f"{np.mean([r['steps'] for r in mine]):,.0f} | "
                         + (f"{np.mean([m for m, _ in matched]):.4f} vs {np.mean([b for _, b in matched]):.4f} |"
                            if matched else "|"))
    kept = path.read_text().partition("\n## ")[2] if path.exists() else ""  # the hand-written sections below the table
    path.write_text("\n".join(lines) + "\n" + (f"\n## {kept}" if kept else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", nargs="*", default=list(CORPORA))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--budget", default="2m")
    ap.add_argument("--baseline", default=next(iter(VARIANTS)), help="the variant that runs first and fixes the model")
    ap.add_argument("--seeds", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    ap.add_argument("--out", type=Path, default=HERE / "OPTIMISER.md")
    args = ap.parse_args()
    saved = args.out.with_suffix(".json")
    rows = json.loads(saved.read_text())["rows"] if saved.exists() else []
    for name in args.corpora:
        pinned: list[str] = []
        for seed in args.seeds:
            for variant in [args.baseline] + [v for v in VARIANTS if v in args.variants and v != args.baseline]:
                if any((r["corpus"], r["variant"], r["seed"], r["budget"]) == (name, variant, seed, args.budget)
                       for r in rows):
                    pinned = pinned or next(r["model"] for r in rows if r["corpus"] == name and r["budget"] == args.budget)
                    continue
                row = run(name, variant, seed, args.budget, pinned, args.work)
                pinned = pinned or row["model"]
                rows.append(row)
                info = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
                saved.write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
                write(rows, args.out, info)


if __name__ == "__main__":
    main()
