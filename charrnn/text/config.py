"""How `train` reads its text: cutting it into documents and labelling them (DocumentConfig), and the vocabulary's limit."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import setting, unescape

# --max-vocab's default: where adaptive softmax trains a 1 x 256 LSTM about as fast as the full softmax did at the
# old limit of 20,000 (benchmarks/VOCAB.md); more distinct characters usually means binary or mixed-up input.
MAX_VOCAB = 50_000


@dataclass(frozen=True)
class DocumentConfig:
    """How `train` cuts its text into documents and labels them (data.split_text, labels.py)."""

    lines: bool = setting(False, "Every non-empty line is a document (names, titles, log lines).", flags=("--lines",))
    doc_sep: str | None = setting(None, "Documents are separated by lines holding only SEP ('%' for fortune files; '' "
                                  "for blank lines).")
    label_sep: str | None = setting(None, "With --lines or --doc-sep: the text before the first SEP of each document is "
                                    "its label (its kind: an author, a language, an account), the rest its text. "
                                    "Escapes: \\t, \\n.", parse=unescape)
    label_from_file: bool = setting(False, "Label each file's documents by the file's name without its extension "
                                    "(poems/keats.txt: keats).", flags=("--label-from-file",))

    @property
    def whole_documents(self) -> bool:
        """Whether validation holds out whole documents (TrainConfig.whole_documents): a corpus cut into documents."""
        return self.lines or self.doc_sep is not None
