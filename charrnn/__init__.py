"""charrnn: learn a character-level recurrent language model from any text, then write like it.

    >>> import charrnn
    >>> model = charrnn.load()                                  # the bundled base model
    >>> print(model.generate("ROMEO.", length=200, seed=1))
    >>> run = charrnn.train("book.txt", time="10m")             # train your own
    >>> run.model.samples(n=3, temperature=0.8)

The API: load -> Model (generate, stream, streams, samples, iter_samples, score, scores, evaluate, adapt,
export_onnx, export_web, info, vocab, labels, path); train -> Run (model, metrics, best_val, out, ended). Errors a
caller can fix raise CharrnnError (a ValueError) with the command line's one-line message.

`import charrnn` loads nothing but this: the API's names are imported when first used (so `charrnn --help` pays
nothing for them), and torch only by the calls that need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import CharrnnError
from .version import __version__

if TYPE_CHECKING:
    from .api import Evaluation, FileScore, Model, Run, Sample, Score, TextStream, load, train


__all__ = ["CharrnnError", "Evaluation", "FileScore", "Model", "Run", "Sample", "Score", "TextStream", "__version__",
           "load", "train"]

_FROM_API = {"Evaluation", "FileScore", "Model", "Run", "Sample", "Score", "TextStream", "load", "train"}


def __getattr__(name: str) -> Any:
    """The API's names, imported from charrnn.api on first use."""
    if name not in _FROM_API:
        raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(".api", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM_API})
