"""Corpora larger than memory: text files streamed in chunks into token arrays on disk, cached per run.

Plain text files (each one a document) are read twice, a chunk at a time, never as one string:
the first pass collects the vocabulary, counts characters and fingerprints the text; the second
writes token ids into `train.bin` and `val.bin` (uint8 when the vocabulary fits, else uint16 or
uint32), laid out exactly as data.split_documents lays out a corpus held in memory. Training reads
them through numpy.memmap, so resident memory stays far below the corpus size.

The arrays live in the run directory (`corpus/`), with a record of the files' sizes and
modification times and of the text's fingerprint: an unchanged corpus is reused without reading
it, a touched but identical one after one hashing pass, a changed one is encoded again.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CharrnnError, UsageError
from .config import MAX_VOCAB, DocumentConfig
from .data import (
    EOS,
    Vocab,
    binary_error,
    check_decoding,
    check_split,
    check_text_file,
    check_vocab_size,
    doc_hash,
    fingerprint,
    fingerprint_of,
    nul_means_binary,
    split_documents,
    train_length,
    undecodable_error,
)
from .labels import Labelled, check_labels, file_label, label_counts, label_inputs, texts_and_labels

CHUNK_BYTES = 1 << 22  # 4 MiB: bounds the memory that reading a chunk takes (~20x its size, briefly)
CACHE_VERSION = 1


@dataclass
class Corpus:
    """A corpus ready to train on: id streams (arrays or memmaps) and what the checkpoint records about it."""

    vocab: Vocab
    train: np.ndarray  # EOS d1[:k1] EOS d2[:k2] ... EOS
    val: np.ndarray  # d1[k1:] EOS d2[k2:] EOS ...
    fingerprint: str
    doc_hashes: np.ndarray  # int64, sorted distinct data.doc_hash of each document
    chars: int
    documents: int
    label_counts: dict[str, int] | None = None  # documents per label, for a labelled corpus


@dataclass(frozen=True)
class TextFiles:
    """Text files to train on, streamed from disk (each file one document, labelled labels[i] when given)."""

    paths: tuple[Path, ...]
    encoding: str = "utf-8"
    errors: str = "strict"
    labels: tuple[str, ...] | None = None


def documents_or_files(paths: list[Path], how: DocumentConfig, encoding: str, errors: str
                       ) -> tuple[list[str] | Labelled | TextFiles, list[str]]:
    """What `train` reads, and the names of its sources: documents cut in memory (--lines, --doc-sep,
    standard input), or else each file one document, streamed from disk into the run's token cache;
    labelled by --label-sep or --label-from-file (labels.py) when asked."""
    from .data import read_inputs

    check_cutting(how)
    if how.lines or how.doc_sep is not None or any(str(p) == "-" for p in paths):
        return cut_documents(read_inputs(paths, encoding, errors), how)
    labels = tuple(file_label(str(p)) for p in paths) if how.label_from_file else None
    return TextFiles(tuple(paths), encoding, errors, labels), [str(p) for p in paths]


def documents_of_texts(texts: list[str], how: DocumentConfig) -> tuple[list[str] | Labelled, list[str]]:
    """Texts held in memory (the Python API's train), each read as a file's text would be: one document, or cut by
    --lines or --doc-sep, labelled by --label-sep. Named <document i>."""
    check_cutting(how)
    if how.label_from_file:
        raise UsageError("--label-from-file labels each file's documents by the file's name, and these texts come from "
                         "no file; give them labels with --label-sep, or pass the files")
    empty = next((i for i, t in enumerate(texts) if not t.strip()), None)
    if empty is not None:
        raise UsageError(f"document {empty} is empty; leave it out")
    return cut_documents([(f"<document {i}>", t) for i, t in enumerate(texts)], how)


def check_cutting(how: DocumentConfig) -> None:
    """Refuse ways of cutting documents that contradict each other."""
    if how.lines and how.doc_sep is not None:
        raise UsageError("--lines and --doc-sep both say how to cut documents; give one of them")
    if how.label_sep is not None and not (how.lines or how.doc_sep is not None):
        raise UsageError("--label-sep reads a label from each line (--lines) or document (--doc-sep): give one of "
                         "them; to label whole files by their names, use --label-from-file")


def cut_documents(inputs: list[tuple[str, str]], how: DocumentConfig) -> tuple[list[str] | Labelled, list[str]]:
    """(name, text) inputs cut into documents and labelled as `how` says, and the inputs' names."""
    from .data import split_text

    docs = [(name, split_text(text, how.lines, how.doc_sep)) for name, text in inputs]
    return label_inputs(docs, how.label_sep, how.label_from_file), [name for name, _ in inputs]


def fit_vocab(chars: set[str], vocab: Vocab | None, grow: bool, max_vocab: int, labels: set[str] | None = None) -> Vocab:
    """The vocabulary to encode a corpus of these distinct characters (and labels) with: its own (no vocab
    given); the given one (a resumed run's) when it covers them; with `grow`, the given one (a base model's,
    --init) with the characters and labels it lacks appended, each in sorted order, every existing character's
    id kept (labels follow the characters, so theirs move up by the characters added: finetune.grown_weights)."""
    labels = labels or set()
    if vocab is None:
        vocab = Vocab(sorted(chars), sorted(labels))
    else:
        if vocab.labels and not labels:
            raise UsageError("the model was trained with labels, and this corpus has none; label its documents "
                             "(--label-sep or --label-from-file)")
        new, new_labels = sorted(chars.difference(vocab.chars)), sorted(labels.difference(vocab.labels))
        if not new and not new_labels:
            return vocab
        if not grow:
            raise UsageError(f"the corpus has {'characters' if new else 'labels'} the checkpoint's vocabulary lacks; "
                             "start a new run")
        vocab = Vocab(vocab.chars + tuple(new), vocab.labels + tuple(new_labels))
    check_vocab_size(vocab, max_vocab)
    return vocab


def corpus_from_docs(docs: list[str] | Labelled, vocab: Vocab | None, val_frac: float, whole: bool, seed: int,
                     max_vocab: int = MAX_VOCAB, grow: bool = False) -> Corpus:
    """A corpus held in memory (standard input, --lines, --doc-sep, library callers); vocab and grow as fit_vocab."""
    texts, labels = texts_and_labels(docs)
    vocab = fit_vocab(set().union(*texts), vocab, grow, max_vocab, set(labels) if labels else None)
    split = split_documents(texts, vocab, val_frac, whole=whole, seed=seed, labels=labels)
    dtype = token_dtype(len(vocab))
    return Corpus(vocab=vocab, train=split.train.astype(dtype), val=split.val.astype(dtype),
                  fingerprint=fingerprint(texts, labels), doc_hashes=np.array(sorted({doc_hash(d) for d in texts}),
                                                                              dtype=np.int64),
                  chars=sum(len(d) for d in texts), documents=len(texts),
                  label_counts=label_counts(labels) if labels else None)


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned integer type that holds every id."""
    return np.dtype(np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32)


def iter_text(path: Path, encoding: str = "utf-8", errors: str = "strict", chunk: int | None = None) -> Iterator[str]:
    """The decoded text of a file, a chunk at a time, as data.read_text would give it whole.

    CRLF is read as LF (also across chunk edges), a leading BOM is dropped, NUL bytes in an 8-bit
    encoding are refused as binary, and an undecodable byte is reported with its file offset.
    """
    dec = codecs.getincrementaldecoder(encoding)(errors)
    eight_bit = nul_means_binary(encoding)
    offset, first, held_cr = 0, True, False
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; reading may raise UsageError midway)
    except OSError as e:
        raise UsageError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    with f:
        while True:
            raw = f.read(chunk or CHUNK_BYTES)
            final = not raw
            if eight_bit and b"\x00" in raw:
                raise binary_error(str(path))
            buffered = len(dec.getstate()[0])
            try:
                text = dec.decode(raw, final=final)
            except UnicodeDecodeError as e:
                raise undecodable_error(str(path), encoding, offset - buffered + e.start) from None
            offset += len(raw)
            if first and text:
                text = text.removeprefix("\ufeff")
                first = False
            if held_cr:
                text = "\r" + text
            held_cr = text.endswith("\r") and not final
            if held_cr:
                text = text[:-1]  # it may pair with an LF at the start of the next chunk
            text = text.replace("\r\n", "\n")
            if text:
                yield text
            if final:
                return


@dataclass
class _Scan:
    codes: np.ndarray  # distinct code points seen
    chars: list[int]  # characters per file
    digests: list[bytes]  # each file's sha256 (data.fingerprint_of)
    doc_hashes: list[int]


def _scan(paths: list[Path], encoding: str, errors: str, progress: Callable[[int], None]) -> _Scan:
    codes = np.zeros(0, dtype=np.uint32)
    counts, hashes, digests = [], [], []
    for p in paths:
        n, blank = 0, True
        whole, per_doc = hashlib.sha256(), hashlib.blake2b(digest_size=8)
        for text in iter_text(p, encoding, errors):
            c = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            codes = np.union1d(codes, np.unique(c))
            n += len(c)
            blank = blank and not text.strip()
            b = text.encode("utf-8")
            whole.update(b)
            per_doc.update(b)
            progress(len(b))
        if blank:
            raise UsageError(f"{p}: is empty; pass text to learn from")
        counts.append(n)
        digests.append(whole.digest())
        hashes.append(int.from_bytes(per_doc.digest(), "little", signed=True))
    return _Scan(codes, counts, digests, hashes)


def _stat_key(paths: list[Path]) -> list:
    return [[str(p.resolve()), st.st_size, st.st_mtime_ns] for p, st in ((p, p.stat()) for p in paths)]


def prepare_corpus(paths: list[Path], cache_dir: Path, val_frac: float, encoding: str = "utf-8", errors: str = "strict",
                   vocab: Vocab | None = None, max_vocab: int = MAX_VOCAB,
                   progress: Callable[[str, int, int], None] | None = None, grow: bool = False,
                   labels: list[str] | None = None) -> Corpus:
    """Encode text files (each a document) into train/val token files under cache_dir (a folder in
    the run directory, made once the input has passed every check), or reuse them.

    vocab, grow: as fit_vocab (a resumed run's vocabulary, or a base model's to grow); by default the corpus's own.
    labels: each file's label (--label-from-file), or None.
    progress(stage, done_bytes, total_bytes) is called as the files are read.
    """
    check_decoding(encoding, errors)
    if not 0.0 <= val_frac < 1.0:
        raise UsageError(f"--val-frac must be in [0, 1), got {val_frac}")
    for p in paths:
        check_text_file(p)
    if labels is not None:
        check_labels(labels)
    settings = {"version": CACHE_VERSION, "encoding": encoding, "errors": errors, "val_frac": val_frac,
                **({"labels": list(labels)} if labels is not None else {})}
    meta_path = cache_dir / "corpus.json"
    meta = _cached_meta(meta_path, settings, vocab, grow)
    if meta and meta["stat"] == _stat_key(paths):
        return _open(cache_dir, meta)  # untouched files: no need to read them
    ticker = _Ticker(progress, sum(p.stat().st_size for p in paths))
    scan = _scan(paths, encoding, errors, ticker.stage("reading"))
    found = fingerprint_of(scan.digests, labels)
    if meta and meta["fingerprint"] == found:
        meta["stat"] = _stat_key(paths)  # touched, not changed
        _write_json(meta_path, meta)
        return _open(cache_dir, meta)
    vocab = fit_vocab({chr(c) for c in scan.codes}, vocab, grow, max_vocab, set(labels) if labels else None)
    ks = [train_length(n, val_frac) for n in scan.chars]
    opened = 2 if labels else 1  # a held-out tail: its label (if any) and the closing EOS
    check_split(val_frac, val_len=sum(n - k + opened for n, k in zip(scan.chars, ks, strict=True) if k < n),
                train_text=sum(ks))
    dtype = token_dtype(len(vocab))
    try:  # only now that the input has passed every check
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharrnnError(f"cannot create the run directory {cache_dir.parent}: {e.strerror}; choose another --out") from None
    meta_path.unlink(missing_ok=True)  # never a record that describes other arrays than those on disk
    heads = [[vocab.label_id(n)] if labels else [] for n in (labels or paths)]
    lengths = _encode(paths, scan.chars, ks, heads, vocab, dtype, cache_dir, encoding, errors, ticker.stage("encoding"))
    meta = {"settings": settings, "stat": _stat_key(paths), "fingerprint": found, "vocab": "".join(vocab.chars),
            "dtype": dtype.name, "lengths": lengths, "chars": sum(scan.chars), "documents": len(paths),
            "doc_hashes": sorted(set(scan.doc_hashes)),
            **({"labels": list(vocab.labels), "label_counts": label_counts(labels)} if labels else {})}
    _write_json(meta_path, meta)
    return _open(cache_dir, meta)


class _Ticker:
    """Counts bytes read in a stage and reports (stage, done, total) to the progress callback."""

    def __init__(self, progress: Callable[[str, int, int], None] | None, total: int):
        self.report = progress or (lambda stage, done, total: None)
        self.total = total

    def stage(self, name: str) -> Callable[[int], None]:
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            self.report(name, done, self.total)

        return tick


def _cached_meta(meta_path: Path, settings: dict, vocab: Vocab | None, grow: bool) -> dict | None:
    """The cache's record when it was made with these settings (and this vocabulary, if given, or with grow
    one that extends it), else None."""
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt
    if meta and vocab is not None:
        ours, theirs = "".join(vocab.chars), meta.get("vocab", "")
        same_labels = list(vocab.labels) == meta.get("labels", [])[: len(vocab.labels) if grow else None]
        if not (theirs.startswith(ours) if grow else theirs == ours) or not same_labels:
            return None  # encoded with other ids (resume --force on another corpus, another base): encode again
    return meta if meta and meta["settings"] == settings else None


def _encode(paths: list[Path], chars: list[int], ks: list[int], heads: list[list[int]], vocab: Vocab, dtype: np.dtype,
            cache_dir: Path, encoding: str, errors: str, tick: Callable[[int], None]) -> dict[str, int]:
    """Write train.bin and val.bin: per file (n chars) EOS, its head (its label's id, or nothing), its first k ids to
    train, the head and the rest (then EOS) to validation, and a closing EOS; returns the lengths written. Temp files,
    fsync, then renames: never a torn array."""
    lengths = {"train": 0, "val": 0}
    eos = np.array([EOS], dtype=dtype)
    # Temporary names per process: under torchrun, processes on another machine may encode the same
    # corpus into the same folder; each writes whole files and the renames replace them atomically.
    tmp = f".tmp{os.getpid()}"
    _remove_orphans(cache_dir)
    try:
        with open(cache_dir / f"train.bin{tmp}", "wb") as ft, open(cache_dir / f"val.bin{tmp}", "wb") as fv:
            def put(f, name, ids):
                f.write(ids.tobytes())
                lengths[name] += len(ids)

            for p, n, k, head in zip(paths, chars, ks, heads, strict=True):
                head = np.array(head, dtype=dtype)
                put(ft, "train", np.concatenate([eos, head]))
                if k < n:
                    put(fv, "val", head)
                pos = 0
                for text in iter_text(p, encoding, errors):
                    ids = vocab.encode(text).astype(dtype)
                    cut = min(max(k - pos, 0), len(ids))
                    put(ft, "train", ids[:cut])
                    put(fv, "val", ids[cut:])
                    pos += len(ids)
                    tick(len(text))
                if k < n:
                    put(fv, "val", eos)
            put(ft, "train", eos)
            for f in (ft, fv):
                f.flush()
                os.fsync(f.fileno())
        for name in ("train", "val"):
            os.replace(cache_dir / f"{name}.bin{tmp}", cache_dir / f"{name}.bin")
    except OSError as e:
        for name in ("train", "val"):
            (cache_dir / f"{name}.bin{tmp}").unlink(missing_ok=True)
        raise CharrnnError(f"cannot write the corpus cache in {cache_dir}: {e.strerror}; "
                           "free some space or choose another --out") from None
    return lengths


def _remove_orphans(cache_dir: Path) -> None:
    """Delete temporary files left by encoders that were killed (their process no longer exists)."""
    for f in cache_dir.glob("*.tmp*"):
        pid = f.name.rsplit(".tmp", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            f.unlink(missing_ok=True)
        except OSError:
            pass  # exists, but not ours to signal: leave it


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _open(cache_dir: Path, meta: dict) -> Corpus:
    arrays = {}
    for name in ("train", "val"):
        n = meta["lengths"][name]
        arrays[name] = (np.memmap(cache_dir / f"{name}.bin", dtype=meta["dtype"], mode="r", shape=(n,)) if n
                        else np.zeros(0, dtype=meta["dtype"]))
    return Corpus(vocab=Vocab(list(meta["vocab"]), meta.get("labels", ())), train=arrays["train"], val=arrays["val"],
                  fingerprint=meta["fingerprint"], doc_hashes=np.array(meta["doc_hashes"], dtype=np.int64),
                  chars=meta["chars"], documents=meta["documents"], label_counts=meta.get("label_counts"))
