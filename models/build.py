"""Build the bundled base model, charrnn/models/base.pt, with a fixed recipe.

    make base                          # trains (~13 minutes on 2 CPU cores), writes base.pt, prints its figures
    python models/build.py --run DIR   # slim an existing run of the same recipe instead of training

The recipe (RECIPE below) fixes the corpora, size, steps, seed and threads, so `make base` makes
the same model again; the same bytes where the arithmetic is the same (the same CPU kind and torch
build; oneDNN picks other kernels on other CPUs). The corpus is read as documents: each block of
the Shakespeare between blank lines (a speech, a stage direction, a heading) and each name, so
the model learns how a document starts, which is where a sample without a prime, a scored line and
a fine-tuning run on a line corpus all begin. What ships is best.pt slimmed for sampling and
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

from charrnn.api.loading import load_model  # noqa: E402
from charrnn.model.checkpoint import BUNDLED, file_sha256, load_checkpoint, save_checkpoint  # noqa: E402
from charrnn.scoring.evaluation import evaluate, score_documents  # noqa: E402
from charrnn.scoring.metrics import Loss  # noqa: E402
from charrnn.text.data import document_stream, held_out_documents, read_text, split_text  # noqa: E402

CORPORA = ["corpora/shakespeare.txt", "corpora/names.txt"]
DOCUMENTS = "shakespeare-and-names.txt"  # written beside the run: one document per block, blank lines between
VAL_FRAC, SEED = 0.02, 1
RECIPE = [DOCUMENTS, "--doc-sep", "", "--layers", "1", "--hidden", "512", "--embed", "64", "--dropout", "0.1",
          "--steps", "6000", "--seed", str(SEED), "--val-frac", str(VAL_FRAC), "--threads", "2", "--no-plot",
          "--sample-length", "0"]
KEEP = ("vocab", "model_config", "train_config", "progress", "corpus", "metrics")  # what sampling, info and --init read
CHARRNN = [sys.executable, "-m", "charrnn"]


def slim(run_ckpt: Path, dest: Path) -> None:
    """best.pt -> the shipped file: KEEP, and the weights in half precision."""
    ckpt = load_checkpoint(run_ckpt)
    payload = {k: ckpt[k] for k in KEEP}
    payload["model"] = {k: v.half() for k, v in ckpt["model"].items()}
    save_checkpoint(payload, dest)


def documents() -> list[str]:
    """The base's documents: the Shakespeare's blocks between blank lines, then the names, one each."""
    plays = split_text(read_text(ROOT / CORPORA[0]), doc_sep="")
    names = split_text(read_text(ROOT / CORPORA[1]), lines=True)
    return plays + names


def validation(ckpt: Path, docs: list[str]) -> dict:
    """nats/char on the documents the run held out (its seed, as training picked them): read in a row
    (each after the one before, as eval reads a file) and each from a fresh start (as score and
    sampling begin a document)."""
    model, vocab, _ = load_model(ckpt)
    held = [docs[i] for i in sorted(held_out_documents(docs, VAL_FRAC, SEED))]
    fresh = sum(score_documents(model, vocab, held), Loss())
    return {"in_a_row": round(evaluate(model, document_stream(held, vocab)).nats, 4), "fresh": round(fresh.nats, 4),
            "documents": len(held)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="slim this run directory instead of training one")
    args = ap.parse_args()
    docs = documents()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = args.run or work / "base"
        if args.run is None:
            (work / DOCUMENTS).write_text("\n\n".join(docs) + "\n", encoding="utf-8")
            print("make base: training", " ".join(RECIPE), file=sys.stderr)
            subprocess.run([*CHARRNN, "train", *RECIPE, "--out", str(run)], cwd=work, check=True)
        BUNDLED.parent.mkdir(parents=True, exist_ok=True)
        slim(run / "best.pt", BUNDLED)
        full, half = validation(run / "best.pt", docs), validation(BUNDLED, docs)
    sha = file_sha256(BUNDLED)
    print(json.dumps({"file": str(BUNDLED.relative_to(ROOT)), "bytes": BUNDLED.stat().st_size, "sha256": sha,
                      "held_out_fp32": full, "held_out_fp16": half,
                      "fp16_cost": round(half["in_a_row"] - full["in_a_row"], 4)}, indent=1))


if __name__ == "__main__":
    main()
