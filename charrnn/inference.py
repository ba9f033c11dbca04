"""Loading a trained model for use (sampling, scoring) and describing a checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .data import EOS, Vocab
from .errors import UsageError
from .model import CharRNN, ModelConfig


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CharRNN, Vocab, dict]:
    """A checkpoint's model (in eval mode, on `device`), its vocabulary, and the raw checkpoint dict."""
    ckpt = load_checkpoint(path)
    try:
        model = CharRNN(ModelConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        vocab = Vocab(ckpt["vocab"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UsageError(f"{path}: the checkpoint is incomplete or inconsistent ({str(e).splitlines()[0][:120]})") from None
    return model.to(device).eval(), vocab, ckpt


def describe(ckpt: dict) -> list[tuple[str, str]]:
    """Rows (name, value) describing a checkpoint, for `charrnn info`."""
    mc, tc, prog, corpus = ckpt["model_config"], ckpt["train_config"], ckpt["progress"], ckpt["corpus"]
    vocab = ckpt["vocab"]
    params = sum(t.numel() for t in ckpt["model"].values())
    preview = "".join(vocab[:80]).replace("\n", "⏎").replace("\t", "⇥").replace(" ", "␠")
    best = prog["best_val"]
    budget = ", ".join(
        f"{label} {tc[k]:g}{unit}" for k, label, unit in (("epochs", "epochs", ""), ("steps", "steps", ""),
                                                          ("time_budget", "time", "s")) if tc.get(k)
    ) or f"until no improvement for {tc['patience']} evaluations"
    return [
        ("model", f"{mc['cell']} {mc['layers']} x {mc['hidden']}, embed {mc['embed']}, dropout {mc['dropout']}"),
        ("parameters", f"{params:,}"),
        ("vocabulary", f"{len(vocab) + 1} symbols (EOS + {len(vocab)} chars): {preview}{'…' if len(vocab) > 80 else ''}"),
        ("training", f"batch {tc['batch_size']} x seq {tc['seq_len']}, lr {tc['lr']:g}, warm-up {tc['warmup']}, "
                     f"weight decay {tc['weight_decay']}, clip {tc['clip']}, seed {tc['seed']}; {budget}; "
                     f"validation: {'whole documents' if tc.get('whole_documents') else 'tail of each document'}"),
        ("progress", f"step {prog['step']:,}, epoch {prog['epoch']}, {prog['chars_seen']:,} chars seen"),
        ("best val", f"{best:.4f} nats/char = {best / math.log(2):.4f} bpc at step {prog['best_step']:,}"
                     if math.isfinite(best) else "none"),
        ("training time", f"{prog['elapsed']:.1f} s"),
        ("corpus", f"{', '.join(corpus['files'])}: {corpus['documents']} document(s), {corpus['chars']:,} chars "
                   f"({corpus['train_chars']:,} train, {corpus['val_chars']:,} validation)"),
        ("fingerprint", f"sha256 {corpus['fingerprint']}"),
        ("format", f"{ckpt['format']} v{ckpt['version']}"),
    ]


@torch.no_grad()
def score_documents(model: CharRNN, vocab: Vocab, docs: list[str], device: torch.device | str = "cpu",
                    batch: int = 256) -> list[float | None]:
    """Log-probability (nats, natural log) of each document as a whole document: from EOS, its
    characters, then the EOS that ends it; len(doc) + 1 predictions each. None for a document
    with characters outside the vocabulary (the model gives it probability zero).

    Documents are scored as independent rows of padded batches, shortest with shortest.
    """
    out: list[float | None] = [None] * len(docs)
    known = [i for i, d in enumerate(docs) if not vocab.missing(d)]
    known.sort(key=lambda i: len(docs[i]))
    model.eval()
    for start in range(0, len(known), batch):
        idx = known[start : start + batch]
        width = len(docs[idx[-1]]) + 1
        x = torch.zeros(len(idx), width, dtype=torch.long)
        y = torch.full((len(idx), width), -100, dtype=torch.long)
        for row, i in enumerate(idx):
            ids = torch.as_tensor(vocab.encode(docs[i]))
            x[row, 1 : len(ids) + 1] = ids  # x[row, 0] is EOS
            y[row, : len(ids)] = ids
            y[row, len(ids)] = EOS
        logits, _ = model(x.to(device))
        nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), y.to(device), ignore_index=-100,
                                                reduction="none").sum(1)
        for row, i in enumerate(idx):
            out[i] = -float(nll[row])
    return out
