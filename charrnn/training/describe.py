"""A checkpoint described in rows for people: its shape, vocabulary, training, progress, corpus and lineage
(`charrnn info`, Model.info, serve's /v1/info and the exported page)."""

from __future__ import annotations

import math

from ..model.config import ModelConfig
from ..scoring.metrics import bits
from .config import OLD_TRAIN_DEFAULTS
from .run_state import end_score_split


def describe(ckpt: dict) -> list[tuple[str, str]]:
    """Rows (name, value) describing a checkpoint, for `charrnn info`."""
    mc, tc, prog, corpus = ckpt["model_config"], ckpt["train_config"], ckpt["progress"], ckpt["corpus"]
    vocab, labels = ckpt["vocab"], ckpt.get("labels", [])
    params = sum(t.numel() for t in ckpt["model"].values() if t.is_floating_point())  # not an adaptive head's ranks
    preview = "".join(vocab[:80]).replace("\n", "⏎").replace("\t", "⇥").replace(" ", "␠")
    budget = ", ".join(
        f"{label} {tc[k]:g}{unit}" for k, label, unit in (("epochs", "epochs", ""), ("steps", "steps", ""),
                                                          ("time_budget", "time", "s")) if tc.get(k)
    ) or f"until no improvement for {tc['patience']} evaluations"
    model = ModelConfig(**mc)
    return [
        ("model", f"{mc['cell']} {mc['layers']} x {mc['hidden']}, embed {mc['embed']}, "
                   f"{model.regularisation.describe()}, {model.describe_softmax()}"),
        ("parameters", f"{params:,}"),
        ("vocabulary", f"{len(vocab) + 1 + len(labels)} symbols (EOS + {len(vocab)} chars"
                       f"{f' + {len(labels)} labels' if labels else ''}): {preview}{'…' if len(vocab) > 80 else ''}"),
        *([("labels", describe_label_counts(labels, corpus.get("label_counts") or {}))] if labels else []),
        ("training", f"batch {_streams(tc)} x seq {tc['seq_len']}{_optimizer(tc)}, lr {tc['lr']:g}, warm-up {tc['warmup']}, "
                     f"weight decay {tc['weight_decay']}, clip {tc['clip']}, seed {tc['seed']}; {budget}; "
                     f"validation: {'whole documents' if tc.get('whole_documents') else 'tail of each document'}"),
        ("progress", f"step {prog['step']:,}, epoch {prog['epoch']}, {prog['chars_seen']:,} chars seen"),
        ("best val", _best_val(prog, ckpt.get("averaged", False))),
        ("training time", f"{prog['elapsed']:.1f} s"),
        ("corpus", f"{', '.join(corpus['files'])}: {corpus['documents']} document(s), {corpus['chars']:,} chars "
                   f"({corpus['train_chars']:,} train, {corpus['val_chars']:,} validation)"),
        ("fingerprint", f"sha256 {corpus['fingerprint']}"),
        *_lineage_rows(ckpt.get("base"), vocab),
        ("format", f"{ckpt['format']} v{ckpt['version']}"),
    ]


def describe_label_counts(labels: list[str], counts: dict[str, int]) -> str:
    """'name (N documents), ...' in the vocabulary's order: what `sample --label` takes and how much it learned of each."""
    return ", ".join(f"{name} ({counts[name]:,} document{'s' if counts[name] != 1 else ''})" if name in counts
                     else f"{name} (none in the last corpus)" for name in labels)


def _streams(tc: dict) -> str:
    """The streams a step read: '32', or with --batch-ramp '16 doubling to 64'."""
    ramp = tc.get("batch_ramp")
    return f"{ramp} doubling to {tc['batch_size']}" if ramp else str(tc["batch_size"])


def _optimizer(tc: dict) -> str:
    """The optimiser where it is not the default AdamW (0.9/0.99), as ', <what>'; '' for the default."""
    name, betas = tc.get("optimizer", "adamw"), (tc.get("beta1", OLD_TRAIN_DEFAULTS["beta1"]), tc.get("beta2", 0.99))
    if name == "adamw":
        return "" if betas == (0.9, 0.99) else f", AdamW betas {betas[0]:g}/{betas[1]:g}"
    return f", {name} ({tc['ns_steps']} Newton-Schulz steps; AdamW betas {betas[0]:g}/{betas[1]:g} for the rest)"


def _best_val(prog: dict, averaged: bool) -> str:
    """The best validation loss; with a --time run's whole-split score, that, and the sample it was chosen on."""
    best, whole = prog["best_val"], prog.get("final_val", math.nan)
    if not math.isfinite(best):
        return "none"
    text = f"{best:.4f} nats/char = {bits(best):.4f} bpc at step {prog['best_step']:,}"
    if math.isfinite(whole):
        text = (f"{whole:.4f} nats/char = {bits(whole):.4f} bpc on {end_score_split(prog.get('final_chars', 0))}, at step "
                f"{prog['best_step']:,} (chosen on a sample of {prog['val_sample']:,} chars: {best:.4f} nats/char)")
    return text + (" (averaged weights, --ema)" if averaged else "")


def _lineage_rows(base: dict | None, vocab: list[str]) -> list[tuple[str, str]]:
    """A fine-tuned model's base (--init): the checkpoint, its corpus and the characters added; each earlier base too."""
    rows = []
    while base:
        added = vocab[base["vocab_size"] - 1 :] if len(rows) == 0 else []
        best = base.get("best_val")
        rows.append(("fine-tuned from" if not rows else "which came from",
                     f"{base['checkpoint']} (sha256 {base['sha256'][:16]}…, step {base.get('step') or 0:,}"
                     + (f", best val {best:.4f}" if best is not None and math.isfinite(best) else "") + "), trained on "
                     f"{', '.join(base['corpus_files']) or '?'} (sha256 {str(base['corpus_fingerprint'])[:16]}…)"
                     + (f"; added {len(added)} char(s): {''.join(added)!r}" if added else "")))
        base = base.get("base")
    return rows
