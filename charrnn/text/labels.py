"""Labels: documents of several kinds in one corpus (poems by author, names by origin, posts by account).

A label is a symbol of the vocabulary of its own, after the characters (data.Vocab), never text. A labelled
document is read as EOS, its label, its text, EOS: the model learns how often each kind opens a document
and what a document of each kind is like, so `sample --label NAME` writes one of that kind, and without
one a sample's kind is drawn as the corpus has them (or as the prime suggests: sample.start).

Where labels come from (`train`):
- `--label-sep SEP` with `--lines` or `--doc-sep`: the text before the first SEP of each document (on its
  first line) is its label, the rest its text;
- `--label-from-file`: each file's name without its extension labels its documents.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

# Above this many distinct labels, and more than a label per LABEL_SHARE documents, the labels are not kinds
# of document but (say) a column cut at the wrong separator: refused, naming the fix.
MAX_PLAIN_LABELS = 100
LABEL_SHARE = 2


@dataclass(frozen=True)
class Labelled:
    """Documents in memory with a label each: texts[i] is labelled labels[i]."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        return label_counts(self.labels)


def label_counts(labels: list[str]) -> dict[str, int]:
    """Documents per label, the labels in sorted order (their order in the vocabulary)."""
    found = Counter(labels)
    return {name: found[name] for name in sorted(found)}


def cut_labels(docs: list[str], sep: str, source: str) -> Labelled:
    """Each document's label (before the first `sep`, surrounding spaces dropped) and text (after it, as it is).
    A document without `sep` on its first line, or with an empty label, is refused, naming the first one;
    one whose text is empty is dropped, as blank lines are."""
    if not sep:
        raise UsageError("--label-sep must not be empty: give the text that ends each label, such as a tab ('\\t') or ':'")
    texts, labels = [], []
    for i, doc in enumerate(docs, 1):
        name, found, text = doc.partition(sep)
        name = name.strip()
        if not found or "\n" in name or not name:
            what = "an empty label" if found and "\n" not in name else f"no {sep!r} on its first line"
            raise UsageError(f"{source}: document {i} ({doc[:40]!r}) has {what}; with --label-sep every document starts "
                             f"with its label and {sep!r} (check the separator, or drop --label-sep)")
        if text.strip():
            texts.append(text)
            labels.append(name)
    check_labels(labels)
    return Labelled(texts, labels)


def file_label(name: str) -> str:
    """--label-from-file: a file's label, its name without the extension."""
    if name == "<stdin>":
        raise UsageError("--label-from-file labels documents by their file's name, and standard input has none; "
                         "give files, or use --label-sep")
    return Path(name).stem


def check_labels(labels: list[str]) -> None:
    """Refuse labels that cannot be kinds of document: none at all, or nearly one per document."""
    if not labels:
        raise UsageError("no labelled document has any text; check --label-sep")
    distinct = len(set(labels))
    if distinct > MAX_PLAIN_LABELS and distinct * LABEL_SHARE > len(labels):
        raise UsageError(f"{distinct:,} distinct labels over {len(labels):,} documents: labels name kinds of document, "
                         "and these look like text; check --label-sep (the label comes before it)")


def label_inputs(inputs: list[tuple[str, list[str]]], label_sep: str | None, from_file: bool) -> Labelled | list[str]:
    """Documents of each input (name, its documents), labelled as asked: by --label-sep, by the file's name, or not."""
    if label_sep is not None and from_file:
        raise UsageError("--label-sep and --label-from-file both say where labels come from; give one of them")
    if from_file:
        labelled = Labelled([d for _, docs in inputs for d in docs],
                            [file_label(name) for name, docs in inputs for _ in docs])
        check_labels(labelled.labels)
        return labelled
    if label_sep is not None:
        parts = [cut_labels(docs, label_sep, name) for name, docs in inputs]
        return Labelled([t for p in parts for t in p.texts], [n for p in parts for n in p.labels])
    return [d for _, docs in inputs for d in docs]


def texts_and_labels(docs: list[str] | Labelled) -> tuple[list[str], list[str] | None]:
    """Documents as (texts, labels or None)."""
    if isinstance(docs, Labelled):
        return docs.texts, docs.labels
    return docs, None
