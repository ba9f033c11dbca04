"""Quality beyond tinyshakespeare: train with defaults at a fixed budget on each corpus of the set.

    make bench-quality                           # builds the set (benchmarks/corpus_set.py), ~20 minutes on 2 cores
    python benchmarks/quality_set.py names           # rerun one corpus; the other rows are kept

For each corpus: the validation loss (and, for names, makemore's test split scored with `eval
--lines`), the model `--time` chose, when the best validation came as a share of the budget, why
the run stopped, and a sample. Writes benchmarks/QUALITY.md and QUALITY.json. Runs one at a time:
they share the cores they are timed on.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import CHARRNN, LN2, machine  # noqa: E402
from corpus_set import DATA, SET, build  # noqa: E402

from charrnn.model.config import ModelConfig  # noqa: E402
from charrnn.settings import parse_duration  # noqa: E402

BUDGETS = {"names": "5m"}  # the target for names is at 5 minutes; the rest run DEFAULT_BUDGET
DEFAULT_BUDGET = "3m"


def train_one(name: str, budget: str, work: Path) -> dict:
    spec, folder, out = SET[name], DATA / name, work / f"set-{name}-{budget}"
    cmd = [*CHARRNN, "train", *[str(folder / f) for f in spec["train"]], *spec["flags"], "--time", budget,
           "--out", str(out), "-q", "--force"]
    t0 = time.perf_counter()
    log = subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    wall = time.perf_counter() - t0
    done = re.search(r"^done \((.+)\): [\d,]+ steps", log, re.M)
    chose = re.search(r"chose (.+?)\. Give", log, re.S)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(metrics, key=lambda r: min(v for v in (r["val_loss"], r.get("ema_val_loss")) if v is not None))
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)  # the model and corpus records
    mc, prog = last["model_config"], last["progress"]
    # Under --time the evaluations score a fixed sample; the whole split's score of the best weights comes at the end.
    whole = prog.get("final_val", float("nan"))
    # The share of the budget: steps, scaled by how much of the budget ran when a run stopped early.
    early = bool(done and done.group(1).startswith("stopped early"))
    ran = min(1.0, wall / parse_duration(budget)) if early else 1.0
    row = {"corpus": name, "budget": budget, "val_loss": whole if whole == whole else best["val_loss"],
           "sample_val_loss": best["val_loss"], "watch_share": prog.get("watch_s", 0.0) / max(prog["elapsed"], 1e-9),
           "best_step": best["step"],
           "steps": metrics[-1]["step"], "best_share": best["step"] / metrics[-1]["step"] * ran,
           "stopped": done.group(1) if done else "?", "early": early, "ran_share": ran,
           "chose": " ".join(chose.group(1).split()) if chose else "",
           "model": f"{mc['layers']} x {mc['hidden']}, {ModelConfig(**mc).regularisation.describe()}, "
                    f"{ModelConfig(**mc).describe_softmax()}", "vocab": mc["vocab_size"],
           "train_chars": last["corpus"].get("train_chars"), "chars_read": metrics[-1]["chars_seen"],
           "final_chars": prog.get("final_chars", 0), "val_chars": last["corpus"].get("val_chars"),
           "optimizer": last["train_config"].get("optimizer", "adamw"),
           "wall_s": wall, "out": str(out)}
    if "test" in spec:
        scored = subprocess.run([*CHARRNN, "eval", "-c", str(out), str(folder / spec["test"]), "--json"],
                                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        row["test_loss"] = json.loads(scored)["nats_per_char"]
    row["sample"] = subprocess.run([*CHARRNN, "sample", "-c", str(out), "--length", "300", "--seed", "1", "-q",
                                    "--temperature", "0.8"] + (["-n", "8"] if "--lines" in spec["flags"] else []),
                                   check=True, capture_output=True, text=True).stdout
    print(f"  {name}: val {row['val_loss']:.4f} ({row['model']}), best at {row['best_share']:.0%} of {budget}, "
          f"stopped: {row['stopped']}", file=sys.stderr)
    return row


def write(path: Path, rows: list[dict], info: dict) -> None:
    lines = [
        "# charrnn quality on corpora nobody tuned for", "",
        f"Machine: {info['machine']['cpu']}, {info['machine']['cores']} cores, torch {info['machine']['torch']}; "
        f"{info['date']}. Every run: `charrnn train FILES FLAGS --time BUDGET` with defaults; validation as "
        "`train` holds it out (the last 10% of the text, or 10% of whole documents), the best weights scored at the end "
        "on all of it, or on as much of it as the 5% watching share allows, spread evenly (scored); watching: the share "
        "of the run that evaluations, samples, checkpoints, loss.png and that last score took.", "",
        "| corpus | budget | val nats/char (bpc) | scored | test | model chosen | optimiser | passes over the text | best at "
        "| stopped | watching |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        test = f"{r['test_loss']:.4f}" if "test_loss" in r else ""
        passes = f"{r['chars_read'] / r['train_chars']:.1f}" if r.get("train_chars") else "?"
        stopped = f"early, at ~{r['ran_share']:.0%}" if r["early"] else r["stopped"]
        scored = f"{r['final_chars']:,} chars" if r.get("final_chars") else "all"
        lines.append(f"| {r['corpus']} | {r['budget']} | {r['val_loss']:.4f} ({r['val_loss'] / LN2:.3f}) | {scored} | {test} | "
                     f"{r['model']} (vocab {r['vocab']:,}) | {r.get('optimizer', 'adamw')} | {passes} | "
                     f"step {r['best_step']:,} of {r['steps']:,} "
                     f"(~{r['best_share']:.0%} of the budget) | {stopped} | {r.get('watch_share', float('nan')):.1%} |")
    lines += ["", "Why each model (the note `train` prints):", ""]
    lines += [f"- {r['corpus']}: {r['chose']}" for r in rows if r.get("chose")]
    lines += ["", "Samples (`charrnn sample --length 300 --temperature 0.8 --seed 1`, `-n 8` for names):", ""]
    for r in rows:
        lines += [f"**{r['corpus']}**", "", *("    " + s for s in r["sample"].rstrip("\n").splitlines()), ""]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(SET))
    ap.add_argument("--time", default=None, help="one budget for every corpus (default: names 5m, the rest 3m)")
    ap.add_argument("--out", type=Path, default=HERE / "QUALITY.md")
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    args = ap.parse_args()
    manifest = build(args.names)
    rows = [train_one(n, args.time or BUDGETS.get(n, DEFAULT_BUDGET), args.work) for n in args.names if n in manifest]
    saved = args.out.with_suffix(".json")
    if saved.exists():  # corpora not run this time keep their last rows, so one corpus can be rerun alone
        done = {r["corpus"] for r in rows}
        kept = [r for r in json.loads(saved.read_text())["rows"] if r["corpus"] not in done]
        rows = sorted(rows + kept, key=lambda r: list(SET).index(r["corpus"]) if r["corpus"] in SET else len(SET))
    info = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    write(args.out, rows, info)
    saved.write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    print(f"bench-quality: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
