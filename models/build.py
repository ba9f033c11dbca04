"""Build the bundled base model, charrnn/models/base.pt, with a fixed recipe.

    make base                          # trains (~10 minutes on 2 CPU cores), writes base.pt, prints its figures
    python models/build.py --run DIR   # slim an existing run of the same recipe instead of training

The recipe (RECIPE below) fixes the corpora, size, steps, seed and threads, so `make base` makes
the same model again; the same bytes where the arithmetic is the same (the same CPU kind and torch
build; oneDNN picks other kernels on other CPUs). What ships is best.pt slimmed for sampling and
fine-tuning: the weights in half precision (half the size; the validation loss is printed for both
precisions, and models/README.md records them), no optimizer state, no RNG or carried state.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from charrnn.checkpoint import BUNDLED, file_sha256, load_checkpoint, save_checkpoint  # noqa: E402

CORPORA = ["corpora/shakespeare.txt", "corpora/names.txt"]
VAL_FRAC = 0.02
RECIPE = [*CORPORA, "--layers", "1", "--hidden", "512", "--embed", "64", "--dropout", "0.1", "--steps", "6000",
          "--seed", "1", "--val-frac", str(VAL_FRAC), "--threads", "2", "--no-plot", "--sample-length", "0"]
KEEP = ("vocab", "model_config", "train_config", "progress", "corpus", "metrics")  # what sampling, info and --init read
CHARRNN = [sys.executable, "-m", "charrnn"]


def slim(run_ckpt: Path, dest: Path) -> None:
    """best.pt -> the shipped file: KEEP, and the weights in half precision."""
    ckpt = load_checkpoint(run_ckpt)
    payload = {k: ckpt[k] for k in KEEP}
    payload["model"] = {k: v.half() for k, v in ckpt["model"].items()}
    save_checkpoint(payload, dest)


def validation_loss(ckpt: Path, work: Path) -> float:
    """nats/char on the last VAL_FRAC of each corpus file (the text training held out), scored as eval does."""
    files = []
    for name in CORPORA:
        text = (ROOT / name).read_text(encoding="utf-8")
        tail = work / f"val-{Path(name).name}"
        tail.write_text(text[len(text) - round(len(text) * VAL_FRAC):], encoding="utf-8")
        files.append(str(tail))
    r = subprocess.run([*CHARRNN, "eval", "-c", str(ckpt), *files, "--json", "--threads", "2"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["nats_per_char"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="slim this run directory instead of training one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = args.run or work / "base"
        if args.run is None:
            print("make base: training", " ".join(RECIPE), file=sys.stderr)
            subprocess.run([*CHARRNN, "train", *RECIPE, "--out", str(run)], cwd=ROOT, check=True)
        BUNDLED.parent.mkdir(parents=True, exist_ok=True)
        slim(run / "best.pt", BUNDLED)
        full, half = validation_loss(run / "best.pt", work), validation_loss(BUNDLED, work)
    sha = file_sha256(BUNDLED)
    print(json.dumps({"file": str(BUNDLED.relative_to(ROOT)), "bytes": BUNDLED.stat().st_size, "sha256": sha,
                      "val_nats_per_char_fp32": round(full, 4), "val_nats_per_char_fp16": round(half, 4),
                      "fp16_cost": round(half - full, 4)}, indent=1))


if __name__ == "__main__":
    main()
