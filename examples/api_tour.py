"""The whole public Python API in one script, typed: `mypy --strict examples/api_tour.py` passes (tests/test_api.py
runs it), and `python examples/api_tour.py` runs it, training a tiny model in a temporary folder for a few seconds."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import charrnn


def write(model: charrnn.Model) -> None:
    text: str = model.generate("ROMEO.", length=80, seed=1, temperature=0.8, stop=["\n\n"])
    streamed: str = "".join(model.stream("ROMEO.", length=80, seed=1, temperature=0.8, stop="\n\n"))
    assert streamed == text
    for stream in model.streams(n=2, length=40, seed=2, probs=True):
        pieces: list[tuple[str, float | None]] = list(stream.pieces())
        why: str | None = stream.ended
        print(len(pieces), why, stream.label, stream.seed, file=sys.stderr)
    samples: list[charrnn.Sample] = model.samples(n=3, length=30, top_k=10, top_p=0.9, unique=True, seed=3)
    best: list[charrnn.Sample] = model.samples("JULIET.", n=2, beam=4, length=20)
    for s in [*samples, *best]:
        logprob: float | None = s.logprob
        print(s.text, s.prime, s.ended, s.seed, s.label, logprob, file=sys.stderr)
    for s in model.iter_samples(n=2, length=20, greedy=True, skip_unknown=True):
        print(s.text, file=sys.stderr)


def score(model: charrnn.Model, folder: Path) -> None:
    one: float = model.score("ROMEO. What light")
    many: list[float] = model.score(["ROMEO. What light", "zq xv kkk"], label=None)
    rows: list[charrnn.Score] = model.scores(["ROMEO."], dynamic=True, dynamic_lr=1e-4)
    (folder / "valid.txt").write_text("ROMEO. What light through yonder window breaks?\n", encoding="utf-8")
    files: list[charrnn.FileScore] = model.evaluate([folder / "valid.txt"], dynamic=True, dynamic_segment=16)
    adapted: charrnn.Model = model.adapt("ROMEO. What light through yonder window breaks?", dynamic_lr=1e-4)
    print(one, many, rows[0].bpc, rows[0].record(), files[0].bpc, files[0].record(), adapted.path, file=sys.stderr)


def describe(model: charrnn.Model, folder: Path) -> None:
    info: dict[str, str] = model.info
    vocab: tuple[str, ...] = model.vocab
    labels: tuple[str, ...] = model.labels
    where: Path = model.path
    onnx: Path = model.export_onnx(folder / "model.onnx")
    page: Path = model.export_web(folder / "site")
    print(info["model"], len(vocab), labels, where, model.device, onnx, page, file=sys.stderr)


def train(folder: Path) -> charrnn.Model:
    heard: list[float] = []

    def watch(evaluation: charrnn.Evaluation) -> bool:
        heard.append(evaluation.val_bpc or 0.0)
        return evaluation.step < 40

    docs = ["the cat sat on the mat. " * 20, "a dog ran in the fog. " * 20]
    run: charrnn.Run = charrnn.train(docs, out=folder / "run", steps=60, eval_every=20, hidden=32, embed=8,
                                     time=None, seed=1, progress=False, on_eval=watch)
    ended: str = run.ended
    more = charrnn.train(docs, out=folder / "run", resume=True, steps=60, eval_every=20, progress=False)
    tuned = charrnn.train(docs, out=folder / "tuned", init="base", steps=10, eval_every=10, quiet=True, plot=False)
    print(ended, more.ended, more.best_val, more.best_val_bpc, more.steps, more.chars_per_s, more.metrics[-1],
          run.out, tuned.ended, heard, file=sys.stderr)
    try:
        charrnn.train("missing.txt")
    except charrnn.CharrnnError as e:
        print(e, file=sys.stderr)
    return more.model


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        base = charrnn.load("base", device="cpu", threads=None)
        write(base)
        score(base, folder)
        describe(base, folder)
        print(train(folder).generate(length=40, seed=1))


if __name__ == "__main__":
    main()
