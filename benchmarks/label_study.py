"""Labels, measured: does `sample --label NAME` write documents of that kind?

    make bench-labels            # ~5 minutes on 2 cores; writes benchmarks/LABELS.md and LABELS.json

One model is trained with defaults (`--lines --label-sep '\\t' --time 3m`) on three clearly different kinds of line:
makemore's names (`name`), one-line fortunes (`fortune`) and lines of Shakespeare's verse (`shakespeare`). Then
200 samples are drawn per label, and each is judged two ways: by a character trigram classifier (naive Bayes,
add-one smoothing) trained on the same training lines, which knows nothing of the model; and by the model's own
score under every label (`charrnn score`'s likeliest kind). A sample lands when the judge names its label.
The model's own judge is also run on held-out real lines, as a classifier. Needs the corpus set
(benchmarks/corpus_set.py: names, fortunes) and tinyshakespeare (../shared/corpora or benchmarks/data).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import CHARRNN, machine  # noqa: E402
from corpus_set import DATA, build  # noqa: E402

PER_KIND, HELD_OUT, SAMPLES, SEED = 6000, 300, 200, 1
SHAKESPEARE = [HERE.parent.parent / "shared" / "corpora" / "tinyshakespeare.txt", DATA / "tinyshakespeare.txt"]


def kinds() -> dict[str, list[str]]:
    """Lines of each kind, shuffled (seeded): names, one-line fortunes, and Shakespeare's spoken lines."""
    build(["names", "fortunes"])
    ts = next((p for p in SHAKESPEARE if p.exists()), None)
    if ts is None:
        sys.exit(f"tinyshakespeare.txt is needed: put it at {SHAKESPEARE[1]}")
    fortunes = [f.strip() for f in (DATA / "fortunes" / "fortunes.txt").read_text().split("\n%\n")]
    found = {"name": (DATA / "names" / "train.txt").read_text().split("\n"),
             "fortune": [f for f in fortunes if "\n" not in f and "\t" not in f and 12 <= len(f) <= 120],
             "shakespeare": [line for line in ts.read_text().split("\n") if line.strip() and not line.endswith(":")]}
    rng = random.Random(SEED)
    for lines in found.values():
        rng.shuffle(lines)
    return {k: [x for x in v if x.strip()][:PER_KIND] for k, v in found.items()}


class Trigrams:
    """A character trigram naive Bayes classifier over documents (EOS-padded), add-one smoothing."""

    def __init__(self, docs: dict[str, list[str]]):
        self.counts = {k: Counter(g for doc in v for g in self._grams(doc)) for k, v in docs.items()}
        self.contexts = {k: Counter() for k in docs}
        for k, c in self.counts.items():
            for g, n in c.items():
                self.contexts[k][g[:2]] += n
        self.alphabet = len({ch for v in docs.values() for doc in v for ch in doc}) + 1
        self.prior = {k: math.log(len(v) / sum(map(len, docs.values()))) for k, v in docs.items()}

    @staticmethod
    def _grams(doc: str) -> list[str]:
        padded = "\x02\x02" + doc + "\x03"
        return [padded[i : i + 3] for i in range(len(padded) - 2)]

    def classify(self, doc: str) -> str:
        def logp(k):
            return self.prior[k] + sum(math.log((self.counts[k][g] + 1) / (self.contexts[k][g[:2]] + self.alphabet))
                                       for g in self._grams(doc))
        return max(self.counts, key=logp)


def charrnn(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run([*CHARRNN, *args], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"charrnn {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def model_kinds(run: Path, docs: list[str]) -> list[str]:
    """The model's likeliest label for each document (charrnn score --json)."""
    out = charrnn("score", "-c", str(run), "--json", stdin="\n".join(docs) + "\n")
    return [json.loads(line)["label"] for line in out.splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", default="3m")
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    args = ap.parse_args()
    lines = kinds()
    train = {k: v[HELD_OUT:] for k, v in lines.items()}
    held = {k: v[:HELD_OUT] for k, v in lines.items()}
    corpus = args.work / "labels" / "kinds.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{k}\t{x}" for k, v in train.items() for x in v]
    random.Random(SEED).shuffle(rows)
    corpus.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run = args.work / "labels" / "run"
    charrnn("train", str(corpus), "--lines", "--label-sep", "\\t", "--time", args.time, "--out", str(run), "-q", "--force")
    judge = Trigrams(train)
    result = {"machine": machine(), "time": args.time, "documents": {k: len(v) for k, v in train.items()},
              "command": f"charrnn train kinds.txt --lines --label-sep '\\t' --time {args.time}", "labels": {}}
    for label in train:
        out = charrnn("sample", "-c", str(run), "--label", label, "-n", str(SAMPLES), "--seed", str(SEED), "--json",
                      "-q", "--length", "300")
        texts = [json.loads(line)["text"] for line in out.splitlines()]
        by_model, by_trigrams = model_kinds(run, texts), [judge.classify(t) for t in texts]
        real = model_kinds(run, held[label])
        result["labels"][label] = {
            "samples": len(texts), "trigram_judge": sum(k == label for k in by_trigrams) / len(texts),
            "model_judge": sum(k == label for k in by_model) / len(texts),
            "trigram_confusion": dict(Counter(by_trigrams)),
            "held_out_real_lines_model": sum(k == label for k in real) / len(real),
            "held_out_real_lines_trigrams": sum(judge.classify(t) == label for t in held[label]) / len(held[label]),
            "examples": texts[:6]}
    (HERE / "LABELS.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    write_markdown(result)


def write_markdown(r: dict) -> None:
    m = r["machine"]
    out = ["# Labels: does `sample --label` write the asked kind?", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}. Written by `make bench-labels` "
           "(benchmarks/label_study.py).", "",
           f"One model, `{r['command']}`, on {', '.join(f'{n:,} {k} lines' for k, n in r['documents'].items())}. "
           f"Then {SAMPLES} samples per label (`charrnn sample --label L -n {SAMPLES} --seed {SEED}`), each judged by a "
           "character trigram classifier trained on the same lines (independent of the model) and by the model's own "
           "likeliest kind (`charrnn score`). The last two columns classify 300 held-out real lines per kind.", "",
           "| label | samples in their label (trigram judge) | (model's own judge) | held-out real lines, model | "
           "held-out real lines, trigrams |", "| --- | --- | --- | --- | --- |"]
    for k, v in r["labels"].items():
        out.append(f"| {k} | {v['trigram_judge']:.1%} | {v['model_judge']:.1%} | {v['held_out_real_lines_model']:.1%} | "
                   f"{v['held_out_real_lines_trigrams']:.1%} |")
    total = sum(v["trigram_judge"] * v["samples"] for v in r["labels"].values()) / sum(v["samples"] for v in r["labels"].values())
    out += ["", f"All samples, trigram judge: **{total:.1%}** in their label.", "", "## Samples", ""]
    for k, v in r["labels"].items():
        out += [f"`--label {k}`:", "", "```", *v["examples"], "```", ""]
    (HERE / "LABELS.md").write_text("\n".join(out))


if __name__ == "__main__":
    main()
