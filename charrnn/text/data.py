"""Vocabulary and corpus: characters to integer ids, documents to train/validation streams.

The vocabulary is the corpus's distinct characters, sorted, behind a reserved end-of-sequence
symbol (EOS) at index 0. EOS follows every document, and the stream starts with one, so "EOS"
also means "start of a document": an unprimed sample begins a fresh document.

A labelled corpus (labels.py) adds one symbol per label after the characters: a labelled document
is read as EOS, its label, its text, so the model learns which labels documents start with and
what a document of each kind is like.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .config import MAX_VOCAB

EOS = 0
EOS_NAME = "<eos>"


class Vocab:
    """Maps characters to ids 1..C (0 is EOS) and back, and labels to the ids after them.

    `chars[i]` is the character of id i+1; `labels[j]` is the label of id text_size + j. Encoding and
    decoding round-trip any text made of characters in the vocabulary, astral-plane characters and
    combining marks included, since ids are per Unicode code point. A label is never text: encode
    never yields one and decode drops them.
    """

    def __init__(self, chars: list[str] | tuple[str, ...], labels: list[str] | tuple[str, ...] = ()):
        chars, labels = tuple(chars), tuple(labels)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("vocabulary must be distinct single characters")
        if any(not isinstance(n, str) or not n for n in labels) or len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct, non-empty names")
        self.chars, self.labels = chars, labels
        self.text_size = len(chars) + 1  # EOS and the characters: what text positions may hold
        self._index = {c: i + 1 for i, c in enumerate(chars)}
        self._label_index = {n: self.text_size + j for j, n in enumerate(labels)}
        # Sorted code points let numpy encode a whole corpus without a Python loop per character.
        order = sorted(range(len(chars)), key=lambda i: ord(chars[i]))
        self._codes = np.array([ord(chars[i]) for i in order], dtype=np.uint32)
        self._code_ids = np.array([i + 1 for i in order], dtype=np.int64)

    @classmethod
    def from_texts(cls, texts: list[str]) -> Vocab:
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        return cls(sorted(seen))

    @classmethod
    def from_record(cls, record: dict) -> Vocab:
        """The vocabulary a checkpoint records ("vocab", and "labels" where it was trained with them)."""
        return cls(record["vocab"], record.get("labels", ()))

    def record(self) -> dict:
        """What a checkpoint keeps of it (from_record's input); no "labels" entry without labels."""
        return {"vocab": list(self.chars), **({"labels": list(self.labels)} if self.labels else {})}

    def __len__(self) -> int:
        return self.text_size + len(self.labels)

    def label_id(self, name: str, option: str = "--label") -> int:
        """The id of label `name`; a UsageError naming the labels there are (or saying there are none)."""
        if name in self._label_index:
            return self._label_index[name]
        if not self.labels:
            raise UsageError(f"{option} {name!r}: this model was trained without labels; leave {option} out")
        raise UsageError(f"{option} {name!r} is not one of the model's labels: {describe_labels(self.labels)}")

    def __contains__(self, ch: str) -> bool:
        return ch in self._index

    def missing(self, text: str) -> list[str]:
        """Distinct characters of `text` that the vocabulary lacks, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._index))

    def encode(self, text: str) -> np.ndarray:
        """text (N chars) -> int64 array (N,). Raises UsageError naming any unknown characters."""
        if not text:
            return np.zeros(0, dtype=np.int64)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        pos = np.minimum(np.searchsorted(self._codes, codes), max(len(self._codes) - 1, 0))
        if len(self._codes) == 0 or not np.array_equal(self._codes[pos], codes):
            raise UsageError(f"text has characters not in the vocabulary: {describe_chars(self.missing(text))}")
        return self._code_ids[pos]

    def decode(self, ids) -> str:
        """ids -> text; EOS and labels decode to nothing."""
        chars, end = self.chars, self.text_size
        return "".join(chars[i - 1] for i in (int(i) for i in ids) if EOS < i < end)

    def token(self, i: int) -> str:
        """Printable name of one id (EOS shows as <eos>, a label as <label:NAME>)."""
        if i >= self.text_size:
            return f"<label:{self.labels[i - self.text_size]}>"
        return EOS_NAME if i == EOS else self.chars[i - 1]


def describe_labels(labels: tuple[str, ...] | list[str], limit: int = 20) -> str:
    """The labels for a message: 'a, b, c', the first `limit` of many and how many more."""
    shown = ", ".join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more (charrnn info lists them)" if len(labels) > limit else "")


def check_vocab_size(vocab: Vocab, limit: int = MAX_VOCAB) -> None:
    """Refuse a vocabulary above `limit` characters: the output layer and softmax grow with it, and
    that many distinct characters usually means the input is not the text it was meant to be."""
    if len(vocab.chars) > limit:
        raise UsageError(
            f"the corpus has {len(vocab.chars):,} distinct characters, more than --max-vocab {limit:,}: each one costs a row "
            "of the embedding and the output layer, and so many usually means binary or mixed-up input; check the files, "
            "or raise --max-vocab"
        )


def describe_chars(chars: list[str], limit: int = 12) -> str:
    """A short, unambiguous list of characters for error messages: 'q' (U+0071), ..."""
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


def read_text(path: str | Path, stdin=None, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Read a text file ('-' reads standard input), with errors a user can act on (UsageError)."""
    if str(path) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        return decode_text(stream.read(), "standard input", encoding, errors)
    p = Path(path)
    check_text_file(p)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UsageError(f"{p}: cannot be read ({e.strerror}); check its permissions") from None
    return decode_text(data, str(p), encoding, errors)


def read_inputs(paths: list[Path], encoding: str, errors: str) -> list[tuple[str, str]]:
    """(name, text) of each input; '-' is standard input, named <stdin>, and may appear once."""
    if sum(str(p) == "-" for p in paths) > 1:
        raise UsageError("standard input ('-') can be read only once; give it once")
    return [("<stdin>" if str(p) == "-" else str(p), read_text(p, encoding=encoding, errors=errors)) for p in paths]


def decode_text(data: bytes, name: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Bytes -> text with CRLF read as LF and a leading BOM dropped; refuses binary, undecodable or empty input.

    errors='replace' turns undecodable bytes into U+FFFD instead of refusing the input.
    """
    check_decoding(encoding, errors)
    if b"\x00" in data and nul_means_binary(encoding):
        raise binary_error(name)
    try:
        text = data.decode(encoding, errors=errors)
    except UnicodeDecodeError as e:
        raise undecodable_error(name, encoding, e.start) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise UsageError(f"{name}: is empty; pass text to learn from")
    return text


def check_text_file(p: Path) -> None:
    """Refuse a path that is missing or a folder, naming the fix."""
    if not p.exists():
        raise UsageError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory; pass the text files inside it (e.g. {p}/*.txt)")


def check_decoding(encoding: str, errors: str) -> None:
    """Refuse an unknown --encoding or --errors value."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UsageError(f"--encoding {encoding!r} is not a known encoding; try utf-8, latin-1 or cp1252") from None
    if errors not in ("strict", "replace"):
        raise UsageError(f"--errors {errors!r}: use strict or replace")


def nul_means_binary(encoding: str) -> bool:
    """In these encodings text never holds a NUL byte, so one means binary input (UTF-16 text has many)."""
    return codecs.lookup(encoding).name.replace("-", "").replace("_", "") in ("utf8", "iso88591", "ascii", "cp1252")


def binary_error(name: str) -> UsageError:
    return UsageError(f"{name}: contains NUL bytes, so it looks binary, not text; pass a text file "
                      "(or --encoding utf-16 if it is UTF-16)")


def undecodable_error(name: str, encoding: str, offset: int) -> UsageError:
    shown = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
    return UsageError(f"{name}: invalid {shown} at byte {offset}; convert it (iconv -t UTF-8), give its --encoding, "
                      "or pass --errors replace")


def split_text(text: str, lines: bool = False, doc_sep: str | None = None) -> list[str]:
    """Cut one text into documents: every non-empty line (lines=True), or pieces between lines that
    hold only `doc_sep` ('%' for fortune files), or, with doc_sep '', between blank lines.
    Without either, the text is one document."""
    if lines:
        docs = [line for line in text.split("\n") if line.strip()]
    elif doc_sep is None:
        return [text]
    elif doc_sep == "":
        docs = [d.strip("\n") for d in re.split(r"\n(?:[ \t]*\n)+", text)]
    else:
        docs = [d.strip("\n") for d in re.split(rf"^{re.escape(doc_sep)}[ \t]*$", text, flags=re.MULTILINE)]
    return [d for d in docs if d.strip()]


def doc_hash(text: str) -> int:
    """A 64-bit hash of one document (blake2b), for the compact record of training documents."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def fingerprint(texts: list[str], labels: list[str] | None = None) -> str:
    """sha256 over the sha256 of each document, in order (so boundaries count, and a corpus
    streamed from disk a chunk at a time gets the same fingerprint as one held in memory);
    a labelled document's digest follows its label's (label_digest)."""
    digests = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
    return fingerprint_of(digests, labels)


def fingerprint_of(digests: list[bytes], labels: list[str] | None = None) -> str:
    """fingerprint() from each document's sha256 digest."""
    if labels is not None:
        digests = [label_digest(n) + d for n, d in zip(labels, digests, strict=True)]
    return hashlib.sha256(b"".join(digests)).hexdigest()


def label_digest(name: str) -> bytes:
    return hashlib.sha256(b"label\x00" + name.encode("utf-8")).digest()


@dataclass(frozen=True)
class Split:
    """Token streams for training and validation (int64 arrays).

    train: EOS d1[:k1] EOS d2[:k2] EOS ... — the training part of each document, each opened by EOS.
    val:   d1[k1:] EOS d2[k2:] EOS ...     — the held-out tail of each document, each closed by EOS.
    Validation scores the prediction of val[t+1] from val[:t+1], for every t.
    """

    train: np.ndarray
    val: np.ndarray


def train_length(n: int, val_frac: float) -> int:
    """How much of a document of n symbols training reads when its tail is held out: all but the last val_frac
    (rounded), which validation scores."""
    return n - int(round(n * val_frac))


def split_documents(docs: list[str], vocab: Vocab, val_frac: float, whole: bool = False, seed: int = 0,
                    labels: list[str] | None = None) -> Split:
    """Hold out validation text, never trained on.

    whole=False: the last `val_frac` of every document (for books and other long documents).
    whole=True: whole documents, drawn at random (seeded) until they hold `val_frac` of the
    characters (for line and document corpora, where a document's tail is no fair test).
    labels: each document's label (vocab has them): its id follows the EOS that opens the document, and
    opens a held-out tail too.
    """
    if not 0.0 <= val_frac < 1.0:
        raise UsageError(f"--val-frac must be in [0, 1), got {val_frac}")
    if whole:
        held = held_out_documents(docs, val_frac, seed)
        train = document_stream([d for i, d in enumerate(docs) if i not in held], vocab,
                                [n for i, n in enumerate(labels) if i not in held] if labels else None)
        val = (document_stream([docs[i] for i in sorted(held)], vocab, [labels[i] for i in sorted(held)] if labels else None)
               if held else np.zeros(0, dtype=np.int64))
    else:
        eos = np.array([EOS], dtype=np.int64)
        train_parts, val_parts = [], []
        heads = [label_head(vocab, labels[i] if labels else None) for i in range(len(docs))]
        for d, head in zip(docs, heads, strict=True):
            ids = vocab.encode(d)
            k = train_length(len(ids), val_frac)
            train_parts += [eos, head, ids[:k]]
            if k < len(ids):
                val_parts += [head, ids[k:], eos]
        train = np.concatenate(train_parts + [eos])
        val = np.concatenate(val_parts) if val_parts else np.zeros(0, dtype=np.int64)
    check_split(val_frac, len(val), int(np.count_nonzero((train != EOS) & (train < vocab.text_size))))
    return Split(train=train, val=val)


def label_head(vocab: Vocab, label: str | None) -> np.ndarray:
    """What follows a document's opening EOS before its text: its label's id, or nothing."""
    return np.array([] if label is None else [vocab.label_id(label)], dtype=np.int64)


def check_split(val_frac: float, val_len: int, train_text: int) -> None:
    """Refuse a split that leaves nothing to validate on (val_len ids) or nothing to train on (train_text characters)."""
    if val_frac > 0 and val_len < 2:
        raise UsageError(
            f"--val-frac {val_frac} leaves no validation text ({val_len} chars); raise it or give a longer corpus"
        )
    if train_text == 0:
        raise UsageError(f"--val-frac {val_frac} leaves no training text; lower it or give a longer corpus")


def document_stream(docs: list[str], vocab: Vocab, labels: list[str] | None = None) -> np.ndarray:
    """Whole documents as one id stream, each opened and closed by EOS: EOS d1 EOS d2 ... EOS;
    with labels, each label's id after the EOS that opens its document: EOS L1 d1 EOS L2 d2 ... EOS."""
    eos = np.array([EOS], dtype=np.int64)
    heads = [label_head(vocab, labels[i] if labels else None) for i in range(len(docs))]
    return np.concatenate([eos] + [part for d, head in zip(docs, heads, strict=True)
                                   for part in (head, vocab.encode(d), eos)])


def held_out_documents(docs: list[str], val_frac: float, seed: int) -> set[int]:
    """Indices of documents to hold out (split_documents with whole=True; the run's seed): a seeded random
    order, taken until val_frac of the characters."""
    if val_frac == 0:
        return set()
    if len(docs) < 2:
        raise UsageError("holding out whole documents needs at least 2 documents; give more, or set --val-frac 0")
    total = sum(len(d) for d in docs)
    order = np.random.default_rng(seed).permutation(len(docs))
    held, size = set(), 0
    for i in order[:-1]:  # always leave one document to train on
        if size >= val_frac * total:
            break
        held.add(int(i))
        size += len(docs[i])
    return held
