"""charrnn's Python API, the front door the command line, `serve` and `export` stand on.

load() a trained model and write, score, adapt or export with it (model.py); train() a new one (training.py). The
keywords of both are the command line's options (keywords.py, typed in options.py). Nothing here imports torch
until a call needs it.
"""

from .model import Model, load
from .scoring import FileScore, Score
from .training import Evaluation, Run, train
from .writing import Sample, TextStream

__all__ = ["Evaluation", "FileScore", "Model", "Run", "Sample", "Score", "TextStream", "load", "train"]
