"""The front door for a trained model: `charrnn.load()` gives a Model, which writes, scores, adapts and exports.

    >>> import charrnn
    >>> model = charrnn.load()                      # the bundled base model; or a run directory, or a .pt file
    >>> text = model.generate("ROMEO.", length=200, seed=1)
    >>> for piece in model.stream("JULIET.", temperature=0.8):
    ...     print(piece, end="")

Every keyword of the writing calls is a `charrnn sample` option, named as the option is without its dashes, with
the option's default (api/keywords.py); the same seed and settings write the same text as `charrnn sample --seed`
on the same device. Errors a caller can fix raise charrnn.CharrnnError with the command line's message; nothing is
printed. Torch is imported by the calls, not by `import charrnn`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from ..errors import UsageError
from ..scoring.config import DynamicConfig
from ..writing.config import SampleConfig, SampleExtras
from .keywords import Keywords, signature
from .scoring import FileScore, Score
from .writing import Sample, TextStream, streams_of

if TYPE_CHECKING:
    from typing import Unpack

    from ..model.network import CharRNN
    from ..text.data import Vocab
    from .options import DynamicOptions, SampleOptions, SamplesOptions

# What `charrnn sample` takes, but for how the command reads and shows (prime_file, json, color, quiet, device,
# threads: load's); samples() takes -n as n, and the filters on whole samples that the others cannot apply.
SAMPLING = Keywords((SampleConfig, SampleExtras, DynamicConfig), leave=("num_samples", "unique", "novel"))
SAMPLES = Keywords((SampleConfig, SampleExtras, DynamicConfig), leave=("num_samples",))
DYNAMIC = Keywords((DynamicConfig,))

PathLike = str | os.PathLike[str]


def load(source: PathLike = "base", *, device: str = "auto", threads: int | None = None) -> Model:
    """A trained model, ready to write and score.

    source: "base" (the bundled model, Shakespeare and names), a run directory (its best.pt, else last.pt) or a .pt
    file. device: "auto" (a GPU where there is one), "cpu", "cuda" or "mps". threads: CPU threads for the arithmetic
    (None: one per core available to this process; the setting is the process's).
    Loading never runs code from the file. Raises CharrnnError for a missing or unreadable checkpoint.

        >>> model = charrnn.load("checkpoints/shakespeare")
    """
    from ..model.checkpoint import resolve_checkpoint
    from ..model.runtime import pick_device, set_threads
    from .loading import load_model

    set_threads(threads)
    path = resolve_checkpoint(source)
    network, vocab, checkpoint = load_model(path, pick_device(device))
    return Model(path, network, vocab, checkpoint)


class Model:
    """A trained model (load() makes one). It writes (generate, stream, streams, samples, iter_samples), scores
    (score, scores, evaluate), adapts to a text (adapt), describes itself (info, vocab, labels, path) and exports
    itself (export_onnx, export_web). The checkpoint on disk is never changed."""

    def __init__(self, path: Path, network: CharRNN, codec: Vocab, checkpoint: dict[str, Any]):
        """For load(). path: the checkpoint file. Beside the calls, for code that drives the network itself (serve,
        inspect): network, the torch module (eval mode); codec, ids <-> text (text.data.Vocab); checkpoint, the
        file's contents as loaded (weights-only)."""
        self.path, self.network, self.codec, self.checkpoint = path, network, codec, checkpoint

    def __repr__(self) -> str:
        return f"<charrnn.Model {self.path} ({self.info['model']}) on {self.device}>"

    # -- what it is ---------------------------------------------------------------------------

    @property
    def vocab(self) -> tuple[str, ...]:
        """The characters the model knows, in id order (EOS, id 0, is not among them)."""
        return tuple(self.codec.chars)

    @property
    def labels(self) -> tuple[str, ...]:
        """The kinds of document the model was trained with (`label=` takes one); () for a model without labels."""
        return tuple(self.codec.labels)

    @property
    def device(self) -> str:
        """Where the network is: "cpu", "cuda:0", "mps"."""
        return str(self.network.device)

    @cached_property
    def info(self) -> dict[str, str]:
        """What `charrnn info` shows, row by row: model, parameters, vocabulary, training, progress, corpus, ..."""
        from ..training.describe import describe

        return dict(describe(self.checkpoint))

    # -- writing ------------------------------------------------------------------------------

    def generate(self, prime: str = "", **options: Unpack[SampleOptions]) -> str:
        """One sample's new text (the prime not included), as `charrnn sample --prime PRIME` writes it after the prime.

        Keywords: `charrnn sample`'s options by their Python names, with its defaults: length=500, temperature=1.0,
        top_k, top_p, greedy, stop (a string or several), keep_stop, seed (None: a random one), label, beam,
        regex, allow and ban (write only text that matches, of these characters, without these strings), skip_unknown,
        adapt (learn from the prime first; dynamic_rule, dynamic_lr, dynamic_segment, dynamic_decay tune it). With
        beam=K, the likeliest continuation K beams find. Raises CharrnnError for a setting out of range, a constraint
        the model cannot meet, or a prime with characters the model never saw (skip_unknown=True drops them).

            >>> model.generate("ROMEO.", length=200, seed=1, temperature=0.8)
        """
        if options.get("beam"):
            return self.samples(prime, **options)[0].text
        return "".join(self.stream(prime, **options))

    def stream(self, prime: str = "", **options: Unpack[SampleOptions]) -> TextStream:
        """One sample as it is written: iterate it for the new text a piece at a time, for a chat bot or an interface;
        ''.join(model.stream(...)) is generate(...) with the same keywords. Its `ended` says why it ended once done.

            >>> for piece in model.stream("ROMEO.", seed=1):
            ...     print(piece, end="", flush=True)
        """
        return self.streams(prime, **options)[0]

    def streams(self, prime: str = "", *, n: int = 1, probs: bool = False,
                **options: Unpack[SampleOptions]) -> list[TextStream]:
        """n samples drawn as one batch, as streams to read in order (`charrnn sample -n N` prints them so): while one
        is read, what the others draw waits for them. probs=True: each stream's pieces() also gives each character's
        probability. Keywords as generate's, beam search aside (it finds whole texts: use samples)."""
        from ..writing.sample import Sampler

        cfg, extras, dyn = self._sampling("Model.streams", SAMPLING, options, n)
        if cfg.beam:
            raise UsageError("--beam finds whole texts, the likeliest first: use samples(beam=K) or generate(beam=K)")
        prime, network = self._prime(prime, extras, cfg, dyn)
        return streams_of(Sampler(network, self.codec, prime, cfg, network.device, probs), prime, cfg.seed)

    def samples(self, prime: str = "", *, n: int = 1, **options: Unpack[SamplesOptions]) -> list[Sample]:
        """n whole samples, in order (`charrnn sample -n N --json`). Keywords as generate's, and unique=True (no
        sample twice) and novel=True (no document of the training corpus: a name it was taught, say); then more are
        drawn to make up n, and fewer come back when the model mostly repeats its corpus. With beam=K, the n
        likeliest distinct continuations K beams find (n <= K), each with its log-probability.

            >>> [s.text for s in model.samples(n=5, length=40, stop="\\n", seed=3)]
        """
        return list(self.iter_samples(prime, n=n, **options))

    def iter_samples(self, prime: str = "", *, n: int = 1, **options: Unpack[SamplesOptions]) -> Iterator[Sample]:
        """samples(), one Sample at a time as each is accepted: for pipelines that should not wait for the last."""
        from ..writing.beam import beam_search, check_beam_flags
        from ..writing.sample import complete_samples, sample_filter

        cfg, extras, dyn = self._sampling("Model.samples", SAMPLES, options, n)
        check_beam_flags(cfg.beam, novel=extras.novel)
        prime, network = self._prime(prime, extras, cfg, dyn)
        if cfg.beam:
            found = beam_search(network, self.codec, prime, cfg, network.device)
            return iter([Sample(h.text, prime, h.ended, None, h.label, h.logprob) for h in found])
        accept = sample_filter(self.checkpoint, self.path, extras.novel, extras.unique)
        drawn = complete_samples(network, self.codec, prime, cfg, network.device, accept)
        return (Sample(text[len(prime):], prime, ended, cfg.seed, label) for text, ended, label in drawn)

    def _sampling(self, call: str, keywords: Keywords, options: dict[str, Any], n: int
                  ) -> tuple[SampleConfig, SampleExtras, DynamicConfig]:
        """The settings of a writing call's keywords, checked, with the seed chosen where none is given."""
        from ..scoring.dynamic import check
        from ..writing.sample import resolve_seed

        given = keywords.split(call, options)
        cfg = SampleConfig(**given[SampleConfig], num_samples=n)
        cfg.validate()
        extras, dyn = SampleExtras(**given[SampleExtras]), DynamicConfig(**given[DynamicConfig])
        if extras.adapt:
            check(dyn)
        return replace(cfg, seed=resolve_seed(cfg.seed)), extras, dyn

    def _prime(self, prime: str, extras: SampleExtras, cfg: SampleConfig, dyn: DynamicConfig) -> tuple[str, CharRNN]:
        """The prime to write from (its unknown characters refused, or dropped with skip_unknown) and the network to
        write with: with adapt, a copy that has learnt from the prime."""
        from ..scoring.dynamic import adapted_to_prime
        from ..writing.sample import check_prime

        if not isinstance(prime, str):
            raise UsageError(f"the prime must be a string, not {type(prime).__name__}")
        prime = check_prime(self.codec, prime, extras.skip_unknown, label=cfg.label)
        if not extras.adapt:
            return prime, self.network
        return prime, adapted_to_prime(self.network, self.codec, prime, dyn, cfg.label)

    # -- scoring ------------------------------------------------------------------------------

    @overload
    def score(self, texts: str, *, label: str | None = None) -> float: ...
    @overload
    def score(self, texts: Iterable[str], *, label: str | None = None) -> list[float]: ...

    def score(self, texts: str | Iterable[str], *, label: str | None = None) -> float | list[float]:
        """Nats per character of one text (a float) or of each of many (a list), each read as a whole document, its
        end included, as `charrnn score` reads lines; lower is more typical. inf for a text with characters the model
        never saw. label: score as that kind (a labelled model's); without it, whatever its kind.

            >>> model.score(["ROMEO. What light", "zq xv kkk"])
        """
        if isinstance(texts, str):
            return self.scores([texts], label=label)[0].nats
        return [s.nats for s in self.scores(texts, label=label)]

    def scores(self, texts: Iterable[str], *, label: str | None = None, dynamic: bool = False,
               **options: Unpack[DynamicOptions]) -> list[Score]:
        """Each text's Score (`charrnn score --json`): nats, bpc, log-probability, a labelled model's likeliest kind.
        dynamic=True also scores them by dynamic evaluation, in order, each adapting the model for the next (the
        keywords dynamic_rule, dynamic_lr, dynamic_segment, dynamic_decay as `charrnn score --dynamic` takes them)."""
        from ..scoring.evaluation import document_scores

        docs = _texts(texts)
        dyn = self._dynamic("Model.scores", options) if dynamic else None
        return [Score.of(doc, loss, self.codec.missing(doc) if loss is None else [], kind, dyn_loss)
                for doc, loss, kind, dyn_loss in document_scores(self.network, self.codec, docs, label, dyn)]

    def evaluate(self, files: PathLike | Sequence[PathLike], *, dynamic: bool = False, lines: bool | None = None,
                 doc_sep: str | None = None, label: str | None = None, encoding: str = "utf-8", errors: str = "strict",
                 **options: Unpack[DynamicOptions]) -> list[FileScore]:
        """Each file's loss, then "(all)" for them together when there are several (`charrnn eval`): the text cut into
        documents as the model's corpus was (or by lines=True / doc_sep=SEP), read as training read it; '-' is
        standard input. dynamic=True adds dynamic evaluation's figure. Raises CharrnnError for a file that cannot be
        read or holds characters the model never saw, before any is scored.

            >>> model.evaluate(["valid.txt"])[0].bpc
        """
        from ..scoring.evaluation import evaluate_files, files_as_streams
        from ..text.data import read_inputs

        dyn = self._dynamic("Model.evaluate", options) if dynamic else None
        paths = [Path(files)] if isinstance(files, str | os.PathLike) else [Path(f) for f in files]
        corpus = self.checkpoint["corpus"]
        if lines is None and doc_sep is None:  # cut as the training corpus was
            lines, doc_sep = bool(corpus.get("lines")), corpus.get("doc_sep")
        streams = files_as_streams(read_inputs(paths, encoding, errors), self.codec, bool(lines), doc_sep, label)
        return [FileScore.of(name, loss, dyn_loss)
                for name, loss, dyn_loss in evaluate_files(self.network, streams, dyn, self.codec.text_size)]

    def adapt(self, text: str, *, label: str | None = None, **options: Unpack[DynamicOptions]) -> Model:
        """A copy of the model that has kept learning from `text` (dynamic evaluation), so that it writes and scores
        in its style (`charrnn sample --adapt`); the model and its file are unchanged. label: read the text as that
        kind. Keywords: dynamic_rule, dynamic_lr, dynamic_segment, dynamic_decay.

            >>> poet = model.adapt(open("poems.txt").read())
        """
        from ..scoring.dynamic import adapted_to_prime
        from ..writing.sample import check_prime

        dyn = self._dynamic("Model.adapt", options)
        check_prime(self.codec, text, name="the text", fix="remove them", label=label)
        return Model(self.path, adapted_to_prime(self.network, self.codec, text, dyn, label), self.codec,
                     self.checkpoint)

    def _dynamic(self, call: str, options: dict[str, Any]) -> DynamicConfig:
        from ..scoring.dynamic import check

        cfg = DynamicConfig(**DYNAMIC.split(call, options)[DynamicConfig])
        check(cfg)
        return cfg

    # -- exporting ----------------------------------------------------------------------------

    def export_onnx(self, path: PathLike) -> Path:
        """Write the model as ONNX (its one-step form, the contract in docs/exporting.md) to `path`, which must end
        in .onnx; returns it. Needs the export extra (pip install 'charrnn[export]')."""
        from ..export.onnx import check_target, export_onnx

        target = Path(path)
        check_target(target)
        return Path(export_onnx(self.network, self.codec, self.checkpoint, target))

    def export_web(self, folder: PathLike) -> Path:
        """Write a static site to `folder`: serve's co-writing page with the model running in it, no server and no
        network; returns folder/index.html."""
        from ..export.web import export_web
        from ..model.checkpoint import run_name

        target = Path(folder)
        export_web(self.network, self.codec, self.checkpoint, target, run_name(self.path))
        return target / "index.html"


def _texts(texts: Iterable[str]) -> list[str]:
    """The texts to score, refusing what is not one (a bytes object, a number) in one line."""
    if isinstance(texts, str):
        return [texts]
    docs = list(texts)
    bad = next((t for t in docs if not isinstance(t, str)), None)
    if bad is not None:
        raise UsageError(f"texts to score must be strings, not {type(bad).__name__}")
    return docs


Model.generate.__signature__ = signature(Model.generate, SAMPLING)  # type: ignore[attr-defined]
Model.stream.__signature__ = signature(Model.stream, SAMPLING)  # type: ignore[attr-defined]
Model.streams.__signature__ = signature(Model.streams, SAMPLING)  # type: ignore[attr-defined]
Model.samples.__signature__ = signature(Model.samples, SAMPLES)  # type: ignore[attr-defined]
Model.iter_samples.__signature__ = signature(Model.iter_samples, SAMPLES)  # type: ignore[attr-defined]
for _method in (Model.scores, Model.evaluate, Model.adapt):
    _method.__signature__ = signature(_method, DYNAMIC)  # type: ignore[attr-defined]
