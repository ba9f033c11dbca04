"""Starting a run from a trained model (`train --init`): its weights, its vocabulary grown by the
new corpus's characters, and the lineage every checkpoint of the new run records.

The new run takes the base's shape and weights and nothing else: its optimizer, schedule, step
count, seed and data position are new. Characters of the new corpus that the base lacks are
appended to its vocabulary, so every old id and the rows behind it stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError
from ..model.checkpoint import file_sha256, load_checkpoint, resolve_checkpoint
from ..model.config import ModelConfig
from ..model.heads import head_class
from ..text.data import Vocab

SHAPE_FIELDS = ("cell", "layers", "hidden", "embed")  # fixed by the base: its weights have this shape
# A new character's output row is the old rows' mean, its bias lowered by log(1 / NEW_CHAR_SHARE). By
# Jensen's inequality exp(mean logit) <= mean exp(logit), so each new character starts with at most
# NEW_CHAR_SHARE / (old vocabulary size) of the probability mass, whatever the context: the old
# characters lose at most that much (tests/test_finetune.py measures it).
NEW_CHAR_SHARE = 0.05


@dataclass(frozen=True)
class Base:
    """A trained model to start from: where it is, its vocabulary, shape, weights and lineage."""

    path: Path
    vocab: Vocab
    model_config: ModelConfig
    weights: dict[str, torch.Tensor]
    lineage: dict  # what the new run's checkpoints record under "base"


def load_base(spec: str | Path) -> Base:
    """The checkpoint `spec` names (a .pt file, a run directory, or 'base' for the bundled model)."""
    path = resolve_checkpoint(spec)
    if not path.is_file():
        raise UsageError(f"--init {spec}: no such checkpoint or run directory; pass a .pt file, a run directory or 'base'")
    ckpt = load_checkpoint(path)
    try:
        vocab, mc = Vocab.from_record(ckpt), ModelConfig(**ckpt["model_config"])
        weights = {k: v.float() for k, v in ckpt["model"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UsageError(f"--init {path}: the checkpoint is incomplete or inconsistent; use best.pt or last.pt "
                         "from a charrnn run") from None
    corpus = ckpt.get("corpus", {})
    lineage = {"checkpoint": str(path), "sha256": file_sha256(path), "step": ckpt.get("progress", {}).get("step"),
               "best_val": ckpt.get("progress", {}).get("best_val"), "corpus_files": list(corpus.get("files", [])),
               "corpus_fingerprint": corpus.get("fingerprint"), "vocab_size": len(vocab),
               "base": ckpt.get("base")}  # the base's own base, for a chain of fine-tunings
    return Base(path, vocab, mc, weights, lineage)


def refuse_shape_flags(given: dict, base: Base) -> None:
    """Size flags cannot apply to a model whose weights already have a shape."""
    clash = [k for k in SHAPE_FIELDS if k in given and given[k] != getattr(base.model_config, k)]
    softmax = base.model_config.softmax or "full"  # None: saved before there was a choice
    if given.get("softmax", "auto") not in ("auto", softmax):
        raise UsageError(f"--init takes its output layer from {base.path} (--softmax {softmax}); drop --softmax")
    if clash:
        have = ", ".join(f"--{k} {getattr(base.model_config, k)}" for k in clash)
        raise UsageError(f"--init takes the model's shape from {base.path} ({have}); drop "
                         f"{', '.join('--' + k for k in clash)}")


def grown_weights(base: Base, vocab: Vocab) -> dict[str, torch.Tensor]:
    """The base's weights for `vocab`, which extends the base's (fit_vocab's contract: old characters' ids unchanged,
    old labels' ids moved up by the characters added).

    A new character's (or label's) embedding is the mean of the old ones, so the network meets it as an
    average character; its output row is the mean of the old output rows (with adaptive softmax, of
    the last cluster's, which new characters join), its bias lowered so that it starts unlikely
    (NEW_CHAR_SHARE) and the old characters keep their probabilities (heads.*.grown).
    """
    old = base.vocab
    if vocab.chars[: len(old.chars)] != old.chars or vocab.labels[: len(old.labels)] != old.labels:
        raise ValueError("the vocabulary does not extend the base's")
    w = dict(base.weights)
    if len(vocab) == len(old):
        return w
    emb = w["embed.weight"]
    w["embed.weight"] = torch.cat([emb, emb[1:].mean(0, keepdim=True).expand(len(vocab) - len(old), -1)])  # EOS left out
    head = head_class(base.model_config.softmax)
    head.grown(w, "head.", len(old), len(vocab), NEW_CHAR_SHARE)
    if old.labels and vocab.text_size > old.text_size:  # rows are old ids then added ones: put labels after chars
        order = grown_order(old, vocab)
        w["embed.weight"] = w["embed.weight"][order]
        head.reordered(w, "head.", order)
    return w


def grown_order(old: Vocab, new: Vocab) -> torch.Tensor:
    """For each id of `new`, its row among the old ids' rows followed by the added ones' (new characters, then new
    labels)."""
    added_chars = new.text_size - old.text_size
    return torch.cat([torch.arange(old.text_size),  # EOS and the old characters keep their ids
                      len(old) + torch.arange(added_chars),  # new characters
                      old.text_size + torch.arange(len(old.labels)),  # old labels
                      len(old) + added_chars + torch.arange(len(new.labels) - len(old.labels))])
