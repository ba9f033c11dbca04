"""Training, the library entry point: set a run up (runs.py), then train it (trainer.py).

The training stream (see corpus.Corpus) is cut into `batch_size` contiguous streams, one per row;
each step reads the next `seq_len` characters of every row and the hidden state carries over
(detached) from one window to the next (batching.py). AdamW with warm-up and decay (schedule.py),
checkpoints and exact resume (trainer.py).
"""

from __future__ import annotations

from pathlib import Path

from ..text.corpus import TextFiles
from .config import TrainConfig
from .distributed import SOLO, World
from .run_state import Reporter, TrainResult
from .runs import set_up
from .trainer import Trainer


def train(docs: list[str] | TextFiles, model_cfg: dict, cfg: TrainConfig, out_dir: str | Path, *,
          sources: list[str] | None = None, resume: bool = False, force: bool = False, reporter: Reporter | None = None,
          sample_every_eval: int = 200, doc_mode: dict | None = None, world: World = SOLO,
          plot: bool = False, init: str | Path | None = None) -> TrainResult:
    """Train a model on `docs` and write checkpoints to `out_dir`.

    docs: documents in memory (EOS follows each), or TextFiles, streamed from disk into token
    arrays cached in out_dir/corpus (see corpus.py) so that corpora larger than memory train.
    model_cfg holds ModelConfig fields other than vocab_size. doc_mode ({"lines": bool, "doc_sep": str
    or None}) records how the text was cut into documents, so eval can cut other text the same way.
    Writes best.pt (lowest validation loss), last.pt (the latest state, for --resume) and
    metrics.jsonl (one JSON object per evaluation). Returns when the budget is spent, patience runs out, or Ctrl-C is pressed.
    plot: also draw loss.png in out_dir at each evaluation, when matplotlib is installed.
    init: start from this trained model (a .pt file, a run directory, or 'base' for the bundled one)
    instead of fresh weights; its shape is kept and its vocabulary grown (finetune.py).
    world: this process's place among torchrun's processes (distributed.from_env); each rank trains
    cfg.batch_size streams of the world's batch_size x size, and rank 0 alone writes files.
    """
    rep = reporter or Reporter()
    run = set_up(docs, model_cfg, cfg, Path(out_dir), sources, resume, force, doc_mode, world, rep,
                 None if init is None else str(init))
    return Trainer(run, rep, world, sample_every_eval, plot).fit()
