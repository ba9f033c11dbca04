"""The keywords of the Python API's calls, typed for editors and type checkers.

Written by `make api-options` from the settings' one declaration; do not edit (tests/test_api.py checks it is
current). At run time the calls check their keywords themselves (api/keywords.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict


class TrainOptions(TypedDict, total=False):
    """charrnn.train's keywords: every option of `charrnn train`."""

    cell: str
    """Recurrent cell. One of: lstm, gru, rnn. (default: 'lstm')"""
    layers: int
    """Stacked recurrent layers. (default: 1)"""
    hidden: int
    """Hidden units per layer. (default: 512)"""
    embed: int
    """Character embedding size. (default: 64)"""
    dropout: float
    """Dropout on embeddings, between layers and before the output. (default: 0.1)"""
    weight_drop: float
    """DropConnect on the recurrent (hidden-to-hidden) weights: a share of them dropped for each training window.
    (default: 0.0)"""
    softmax: str | None
    """Output layer: full; adaptive (frequent characters in a full-width head, rare ones in narrower clusters: for
    large vocabularies such as Chinese); or auto: adaptive where it trains faster on this device, measured.
    (default: auto) One of: auto, full, adaptive."""
    seq_len: int
    """Truncated-BPTT window: characters per stream per step. (default: 64)"""
    batch_size: int | None
    """Parallel streams per step. (default: 32; on a GPU with --time, the fewest that train nearly as fast as any,
    measured, with the learning rate scaled)"""
    batch_ramp: int | None
    """Start with this many streams and double them at equal shares of the budget up to --batch-size (16 with --batch-
    size 64: 16, 32, then 64 streams), the learning rate scaled by sqrt(streams / 32), all processes' streams under
    torchrun; needs --time or --steps. (default: off)"""
    lr: float | None
    """Peak learning rate (AdamW). (default: 5e-3; 2e-3 for a run started with --init)"""
    min_lr_frac: float
    """The learning rate decays to lr x this by the end of the budget. (default: 0.05)"""
    warmup: int
    """Steps of linear learning-rate warm-up. (default: 100)"""
    schedule: str
    """Learning-rate schedule. One of: cosine. (default: 'cosine')"""
    optimizer: str | None
    """adamw; muon: Muon's orthogonalised updates for the recurrent and input matrices (AdamW for the rest); muon-
    gates: the same, each gate's block on its own. (default: by the passes over the training text the budget buys:
    muon under 25, else adamw, and adamw without a budget) One of: adamw, muon, muon-gates."""
    beta1: float | None
    """AdamW's momentum (beta1). (default: by the passes over the training text the budget buys: 0 under 25, else 0.9,
    and 0.9 without a budget)"""
    beta2: float
    """AdamW's second-moment decay (beta2). (default: 0.99)"""
    ns_steps: int
    """Muon's Newton-Schulz iterations. (default: 5)"""
    weight_decay: float
    """AdamW weight decay on matrices. (default: 0.01)"""
    clip: float
    """Clip the global gradient norm to this. (default: 1.0)"""
    ema: float
    """Also keep an exponential moving average of the weights with this decay per step (0.999, say; 0: off), evaluated
    beside them: best.pt takes whichever scores better. (default: 0.0)"""
    epochs: float | None
    """Stop after this many passes over the data. (default: None)"""
    steps: int | None
    """Stop after this many steps. (default: None)"""
    time: str | float | None
    """Stop after this much time (evaluations included): 90s, 10m, 2h. (default: None)"""
    patience: int
    """Stop after this many evaluations without improvement: without a budget, or early in a --time budget, whose rest
    would only overfit (0: never). (default: 4)"""
    val_frac: float
    """Fraction held out from the end of each document for validation. (default: 0.1)"""
    max_vocab: int
    """Refuse corpora with more distinct characters than this. (default: 50000)"""
    eval_every: int | None
    """Evaluate every N steps. (default: 12 times per budget, else 250)"""
    eval_chars: int | None
    """Score at most this many validation characters per evaluation (0: all). (default: 1000000)"""
    seed: int
    """Random seed (weights, data order, dropout). (default: 1337)"""
    device: str
    """auto, cpu, cuda or mps. (default: 'auto')"""
    precision: str | None
    """auto (fp16 autocast on CUDA, fp32 elsewhere), fp32, bf16 or fp16; one this machine cannot run is refused.
    (default: auto; on --resume, the run's own)"""
    compile: bool
    """torch.compile the training forward pass around the recurrent kernel: embedding, dropout and output layer (dynamo
    leaves nn.LSTM/GRU/RNN to their fused kernels); slow start. (default: False)"""
    lines: bool
    """Every non-empty line is a document (names, titles, log lines). (default: False)"""
    doc_sep: str | None
    """Documents are separated by lines holding only SEP ('%' for fortune files; '' for blank lines). (default: None)"""
    label_sep: str | None
    """With --lines or --doc-sep: the text before the first SEP of each document is its label (its kind: an author, a
    language, an account), the rest its text. Escapes: \\t, \\n. (default: None)"""
    label_from_file: bool
    """Label each file's documents by the file's name without its extension (poems/keats.txt: keats). (default: False)"""
    out: str | Path | None
    """Run directory. (default: checkpoints/<first file's name>)"""
    resume: bool
    """Continue the run in --out from its last.pt. (default: False)"""
    force: bool
    """With --resume: continue even if flags contradict the checkpoint. (default: False)"""
    init: str | Path | None
    """Fine-tune: start from this trained model (a .pt file, a run directory, or 'base' for the bundled one), its shape
    kept, new characters added; optimizer, schedule and seed are new. (default: None)"""
    sample_length: int
    """Characters of the sample shown at each evaluation (0: none). (default: 200)"""
    plot: bool
    """Write loss.png in the run directory at each evaluation (when matplotlib is installed). (default: True)"""
    tensorboard: bool
    """Also write the curves and samples as TensorBoard event files into the run directory's tb/ (needs the tensorboard
    package; view with tensorboard --logdir checkpoints/). (default: False)"""
    quiet: bool
    """Only the final summary on stderr. (default: False)"""
    encoding: str
    """Text encoding of the input (utf-8, latin-1, cp1252, utf-16, ...). (default: 'utf-8')"""
    errors: str
    """strict: refuse undecodable bytes; replace: read them as U+FFFD. (default: 'strict')"""
    threads: int | None
    """CPU threads for the arithmetic. (default: one per core available to this process)"""


class SampleOptions(TypedDict, total=False):
    """Model.generate's and Model.stream's keywords: `charrnn sample`'s options for the draw."""

    length: int
    """New characters per sample (the prime not counted). (default: 500)"""
    temperature: float
    """Softmax temperature (> 0): lower is safer, higher wilder. (default: 1.0)"""
    top_k: int | None
    """Draw only among the K likeliest characters. (default: None)"""
    top_p: float | None
    """Draw only among the likeliest characters whose mass reaches P. (default: None)"""
    greedy: bool
    """Always take the most likely character. (default: False)"""
    stop: str | Sequence[str]
    """End a sample as soon as its new text contains TEXT (repeatable); the output ends just before it (--keep-stop
    keeps it). Escapes: \\n, \\t. (default: ())"""
    keep_stop: bool
    """With --stop: end the output with the stop text instead of just before it. (default: False)"""
    regex: str | None
    """Write only text that matches this regular expression in full (the prime not included): characters that cannot
    lead to a match are never drawn, and a sample ends only where it matches, within --length. Python's syntax,
    without backreferences, lookaround or \\b. (default: None)"""
    allow: str | None
    """Write only these characters: a class such as a-z or '[a-z ]'. (default: None)"""
    ban: str | Sequence[str]
    """Never write TEXT (repeatable), counting across the prime's end. Escapes: \\n, \\t. (default: ())"""
    seed: int | None
    """Random seed (reported on stderr when not given). (default: None)"""
    label: str | None
    """A kind of document: one of the labels the model was trained with (charrnn info lists them). (default for sample:
    each sample's kind drawn as the corpus has them, or as the prime suggests) (default: None)"""
    beam: int | None
    """Beam search with K beams: the likeliest continuation they find (never less likely than greedy's), not a random
    one; with -n the n likeliest, distinct (n <= K). --json adds each one's log-probability. (default: None)"""
    skip_unknown: bool
    """Drop prime characters the model does not know instead of failing. (default: False)"""
    adapt: bool
    """First let the model learn from the prime (dynamic evaluation over a long --prime-file), so the samples follow
    its style. The checkpoint is unchanged. (default: False)"""
    dynamic_rule: str
    """Update rule: rms (gradients scaled by their running RMS) or sgd. (default: 'rms')"""
    dynamic_lr: float
    """Step size of each update. (default: 0.0005)"""
    dynamic_segment: int
    """Characters scored between updates. (default: 32)"""
    dynamic_decay: float
    """Pull toward the trained weights at each update (0: none). (default: 0.001)"""


class SamplesOptions(SampleOptions, total=False):
    """Model.samples' keywords: SampleOptions and the filters on whole samples."""

    unique: bool
    """Drop samples that repeat an earlier one (more are drawn to make up -n). (default: False)"""
    novel: bool
    """Drop samples that are a document of the training corpus (e.g. a known name). (default: False)"""


class DynamicOptions(TypedDict, total=False):
    """Model.adapt's, Model.scores' and Model.evaluate's keywords: dynamic evaluation's settings."""

    dynamic_rule: str
    """Update rule: rms (gradients scaled by their running RMS) or sgd. (default: 'rms')"""
    dynamic_lr: float
    """Step size of each update. (default: 0.0005)"""
    dynamic_segment: int
    """Characters scored between updates. (default: 32)"""
    dynamic_decay: float
    """Pull toward the trained weights at each update (0: none). (default: 0.001)"""
