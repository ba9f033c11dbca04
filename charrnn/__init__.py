"""charrnn: learn a character-level recurrent language model from any text, then write like it.

    >>> import charrnn
    >>> model = charrnn.load()                                  # the bundled base model
    >>> print(model.generate("ROMEO.", length=200, seed=1))
    >>> run = charrnn.train("book.txt", time="10m")             # train your own
    >>> run.model.samples(n=3, temperature=0.8)

The API: load -> Model (generate, stream, streams, samples, iter_samples, score, scores, evaluate, adapt,
export_onnx, export_web, info, vocab, labels, path); train -> Run (model, metrics, best_val, out, ended). Errors a
caller can fix raise CharrnnError (a ValueError) with the command line's one-line message. `import charrnn` does not
import torch: the calls do.
"""

from .api import Evaluation, FileScore, Model, Run, Sample, Score, TextStream, load, train
from .errors import CharrnnError

__version__ = "0.1.0"

__all__ = ["CharrnnError", "Evaluation", "FileScore", "Model", "Run", "Sample", "Score", "TextStream", "__version__",
           "load", "train"]
