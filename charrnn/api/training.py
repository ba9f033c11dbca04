"""Training from Python: `charrnn.train(data, **options)` is `charrnn train`, returning the Run instead of printing.

    >>> run = charrnn.train("book.txt", time="10m")
    >>> run.best_val_bpc, run.ended
    >>> run.model.generate("Chapter 1", length=300)

Every option of `charrnn train` is a keyword, named as the option is without its dashes and with its default
(api/keywords.py). Progress goes to stderr (a live display in a notebook), or nowhere with progress=False;
on_eval(evaluation) hears each evaluation and may stop the run by answering False. Ctrl-C, or a notebook's stop
button, stops it after the step in flight: last.pt is written and the Run comes back marked "interrupted";
train(..., resume=True) continues it exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..model.config import ModelConfig
from ..text.config import DocumentConfig
from ..training.config import RunOptions, TrainConfig
from .keywords import Keywords, signature

if TYPE_CHECKING:
    from typing import Unpack

    from ..text.corpus import TextFiles
    from ..text.labels import Labelled
    from ..training.run_state import Reporter, TrainResult
    from .model import Model
    from .options import TrainOptions

TRAINING = Keywords((ModelConfig, TrainConfig, DocumentConfig, RunOptions))

# Run.ended, by what stopped the loop (Progress.stopped).
ENDED = {"budget": "budget", "time": "budget", "cap": "budget", "patience": "patience", "early": "patience",
         "interrupted": "interrupted", "terminated": "terminated", "stopped": "stopped"}


@dataclass(frozen=True)
class Evaluation:
    """What on_eval hears at each evaluation: the run's position, its losses in nats per character (val_loss None
    without validation text; ema_val_loss with ema=), and the sample written then ("" when none was)."""

    step: int
    epoch: int
    chars_seen: int
    elapsed: float
    train_loss: float
    lr: float
    chars_per_s: float
    val_loss: float | None
    val_bpc: float | None
    ema_val_loss: float | None
    sample: str

    @property
    def train_bpc(self) -> float:
        """train_loss in bits per character."""
        return self.train_loss / math.log(2)


@dataclass
class Run:
    """A training run that has ended: where it wrote (out: best.pt, last.pt, metrics.jsonl), why it ended ("budget",
    "patience", "interrupted" by Ctrl-C or a notebook's stop button, "terminated" by SIGTERM, or "stopped" by
    on_eval; the last three resume exactly with resume=True), the records of metrics.jsonl, and best.pt's validation
    loss in nats per character (over the whole validation split where a --time run scored it at the end; nan without
    validation text). rank: this process's place under torchrun (0 alone)."""

    out: Path
    ended: str
    metrics: list[dict[str, Any]]
    best_val: float
    steps: int
    chars_per_s: float
    rank: int = 0

    @property
    def best_val_bpc(self) -> float:
        """best_val in bits per character."""
        return self.best_val / math.log(2)

    @cached_property
    def model(self) -> Model:
        """best.pt, loaded for use (on the device load() picks)."""
        from .model import load

        if not (self.out / "best.pt").is_file():
            raise UsageError(f"{self.out} has no best.pt yet: the run stopped before its first evaluation; resume it "
                             "(resume=True) or load last.pt")
        return load(self.out)


def train(data: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, progress: bool = True,
          on_eval: Callable[[Evaluation], bool | None] | None = None, **options: Unpack[TrainOptions]) -> Run:
    """Train a model on `data` and return the Run (`charrnn train`).

    data: a file's path, several paths (pathlib.Path; '-' is standard input), or strings held in memory, one
    document each (cut further by lines=True or doc_sep=, labelled by label_sep=). Keywords: every `charrnn train`
    option by its Python name: out (default checkpoints/<first file's name>, or checkpoints/documents), time ("10m"
    or seconds), steps, epochs, init ("base" to fine-tune the bundled model), resume, hidden, layers, lr, seed, ...
    progress: show progress on stderr (False: nothing). on_eval(evaluation): called at each evaluation; answering
    False stops the run as Ctrl-C does. Raises CharrnnError for bad options or data, before anything is written.

        >>> run = charrnn.train(["first document", "second document"], steps=200)
    """
    from ..training.distributed import from_env, shutdown
    from ..training.run_state import Reporter
    from ..training.train import train as run_training

    given = TRAINING.split("train", options)
    cfg, docs, how = (TrainConfig(**given[TrainConfig]), DocumentConfig(**given[DocumentConfig]),
                      RunOptions(**given[RunOptions]))
    reporter = _reporter(progress, how, on_eval)  # first: a missing tensorboard is refused before reading
    inputs, sources, name = _inputs(data, docs, how)
    cfg = replace(cfg, whole_documents=docs.whole_documents)
    _threads(how.threads)
    world = from_env(cfg.device)  # under torchrun: join the other processes
    out = Path(how.out) if how.out is not None else Path("checkpoints") / name
    finished = False
    try:
        result = run_training(inputs, given[ModelConfig], cfg, out, sources=sources, resume=how.resume, force=how.force,
                              reporter=reporter if world.main else Reporter(), sample_every_eval=how.sample_length,
                              doc_mode={"lines": docs.lines, "doc_sep": docs.doc_sep}, world=world, plot=how.plot,
                              init=None if how.init is None else str(how.init))
        finished = True
    finally:
        shutdown(world, finished)
    return _run(result, world.rank)


def _threads(threads: int | None) -> None:
    from ..model.runtime import set_threads

    set_threads(threads)


def _reporter(progress: bool, how: RunOptions, on_eval: Callable[[Evaluation], bool | None] | None) -> Reporter:
    """Where the run's events go: the terminal (unless progress=False; only the summary with quiet), TensorBoard's
    event files with tensorboard=True, and on_eval."""
    from ..training.progress import terminal_reporter
    from ..training.run_state import Reporter

    if progress:
        reporter = terminal_reporter(how.quiet, how.tensorboard)
    elif how.tensorboard:
        from ..training.tensorboard_log import TensorBoardReporter

        reporter = TensorBoardReporter(Reporter())
    else:
        reporter = Reporter()
    if on_eval is None:
        return reporter
    from .watching import Watcher

    return Watcher(reporter, on_eval)


def _inputs(data: Any, docs: DocumentConfig, how: RunOptions
            ) -> tuple[list[str] | Labelled | TextFiles, list[str], str]:
    """What the run reads, its sources' names, and the run directory's default name: files (streamed from disk or
    cut in memory as `docs` says), or texts held in memory."""
    from ..text.corpus import documents_of_texts, documents_or_files

    items = [data] if isinstance(data, str | os.PathLike) else data
    if isinstance(items, bytes) or not isinstance(items, Iterable):
        raise UsageError(f"train() reads a path, a list of paths, or a list of texts (one document each), not "
                         f"{type(data).__name__}")
    items = list(items)
    if not items:
        raise UsageError("train() was given no data: give a file's path or a list of texts")
    if isinstance(data, str) or all(isinstance(i, os.PathLike) for i in items):
        paths = [Path(i) for i in items]
        found, sources = documents_or_files(paths, docs, how.encoding, how.errors)
        return found, sources, "stdin" if str(paths[0]) == "-" else paths[0].stem
    if not all(isinstance(i, str) for i in items):
        raise UsageError("train() takes paths (pathlib.Path) or texts (str) in one list, not both: give one kind")
    if all("\n" not in t and len(t) < 4096 and os.path.isfile(t) for t in items):
        raise UsageError(f"these texts are names of files ({items[0]!r}, ...): to train on the files, pass their paths "
                         "as pathlib.Path objects (or one path as a string)")
    found, sources = documents_of_texts(items, docs)
    return found, sources, "documents"


def _run(result: TrainResult, rank: int) -> Run:
    p = result.progress
    best = p.final_val if math.isfinite(p.final_val) else p.best_val
    return Run(out=result.out_dir, ended=ENDED.get(p.stopped, p.stopped), metrics=list(result.metrics),
               best_val=best if math.isfinite(best) else math.nan, steps=p.step, chars_per_s=result.chars_per_s,
               rank=rank)


train.__signature__ = signature(train, TRAINING)  # type: ignore[attr-defined]
