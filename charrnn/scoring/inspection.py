"""Looking inside a trained model: what it predicts at each position, and what its hidden units track.

The text is read as one document, as training and `eval` read it: EOS, the characters, EOS. At
position t the model has read ids[: t + 1] and is scored on ids[t + 1], so there are len(text) + 1
predictions and their mean surprisal is `eval`'s loss on the same text. With a label (a labelled
model), the document opens EOS, label, as `eval --label` reads it: the label is given, not predicted,
so the positions start after it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import CharrnnError, UsageError
from ..model.network import CharRNN
from ..text.data import EOS, Vocab, describe_chars
from .metrics import LN2, Loss

FEATURES = ("quote", "newline", "indent")


@dataclass
class Inspection:
    """Per prediction t (n = len(text) + 1 of them):

    target[t]: the id that came next; probs[t]: the model's whole distribution (n, vocab);
    hidden[t]: every layer's hidden output after reading ids[t] (n, layers, hidden).
    """

    vocab: Vocab
    ids: np.ndarray  # EOS text EOS, (n + 1,); with a label: label text EOS
    probs: np.ndarray  # (n, vocab), rows sum to 1
    hidden: np.ndarray  # (n, layers, hidden)

    @property
    def target(self) -> np.ndarray:
        return self.ids[1:]

    def surprisal_bits(self) -> np.ndarray:
        """-log2 p(actual next) per prediction."""
        p = self.probs[np.arange(len(self.target)), self.target]
        return -np.log2(np.maximum(p, 1e-45))

    def loss(self) -> Loss:
        """The loss over all predictions: equals `eval`'s on the same text."""
        return Loss(float(self.surprisal_bits().sum() * LN2), len(self.target))

    def top(self, t: int, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs[t])[:k]
        return [(self.vocab.token(int(i)), float(self.probs[t, i])) for i in order]


@torch.no_grad()
def inspect_text(model: CharRNN, vocab: Vocab, text: str, device: torch.device | str = "cpu",
                 label: str | None = None) -> Inspection:
    """Run the model over `text` one step at a time (state carried), keeping its predictions and hidden units;
    with `label`, the document's kind (vocab.labels) is read first, as eval --label reads it."""
    head = [EOS] + ([] if label is None else [vocab.label_id(label)])
    ids = np.concatenate([head, vocab.encode(text), [EOS]]).astype(np.int64)
    model.eval()
    state = model.init_state(1, device)
    probs, hidden = [], []
    x = torch.as_tensor(ids[:-1], device=device)
    for t in range(len(x)):
        logits, state = model.step(x[t : t + 1], state)
        probs.append(torch.softmax(logits.double(), -1)[0].cpu())
        h = model.cell.unpack(state)[0]  # (layers, 1, hidden)
        hidden.append(h[:, 0].float().cpu())
    given = len(head) - 1  # the EOS before a label predicted the label: given, so not shown
    return Inspection(vocab, ids[given:], torch.stack(probs).numpy()[given:], torch.stack(hidden).numpy()[given:])


def check_request(model: CharRNN, vocab: Vocab, text: str, find: str | None, neuron: int | None, layer: int) -> None:
    """Refuse what inspect cannot show: unknown characters, an unknown feature, a unit the model lacks."""
    missing = vocab.missing(text)
    if missing:
        raise UsageError(f"the text has characters the model never saw: {describe_chars(missing)}; remove them")
    if find is not None and find not in FEATURES:
        raise UsageError(f"--find {find!r} is not known; use {', '.join(FEATURES)}")
    cfg = model.config
    if neuron is not None and not (0 <= layer < cfg.layers and 0 <= neuron < cfg.hidden):
        raise UsageError(f"--layer {layer} --neuron {neuron}: the model has {cfg.layers} layer(s) of {cfg.hidden} units "
                         f"(0-{cfg.layers - 1}, 0-{cfg.hidden - 1})")


def feature(text: str, name: str) -> np.ndarray:
    """A simple per-character feature of `text` (aligned with the characters read at positions 1..n):

    quote: 1 inside double quotes, else 0; newline: characters since the last newline;
    indent: leading spaces of the current line.
    """
    if name not in FEATURES:
        raise ValueError(f"unknown feature {name!r}")
    out = np.zeros(len(text))
    inside, since, indent, at_start = False, 0, 0, True
    for i, c in enumerate(text):
        if c == "\n":
            since, indent, at_start = 0, 0, True
        else:
            since += 1
            if at_start and c == " ":
                indent += 1
            else:
                at_start = False
        if c == '"':
            inside = not inside
        out[i] = {"quote": float(inside), "newline": float(since), "indent": float(indent)}[name]
    return out


def rank_units(ins: Inspection, text: str, name: str, top: int = 10) -> list[tuple[int, int, float]]:
    """(layer, unit, Pearson r) of the hidden units whose activation follows the feature most closely, by |r|.

    The activation after reading character i (position i + 1) is paired with feature(text)[i].
    """
    f = feature(text, name)
    acts = ins.hidden[1 : len(text) + 1]  # after each character of the text, (n, layers, hidden)
    if len(f) < 3 or f.std() == 0:
        return []
    a = acts.reshape(len(f), -1)
    a = a - a.mean(0)
    fc = f - f.mean()
    denom = np.sqrt((a**2).sum(0) * (fc**2).sum())
    r = np.where(denom > 0, (a * fc[:, None]).sum(0) / np.where(denom > 0, denom, 1), 0.0)
    order = np.argsort(-np.abs(r))[:top]
    hidden = ins.hidden.shape[2]
    return [(int(i // hidden), int(i % hidden), float(r[i])) for i in order]


def to_html(ins: Inspection, text: str, title: str, neuron: tuple[int, int] | None = None) -> str:
    """A self-contained page (inline CSS, no scripts or links): each character tinted by the model's
    surprise at it, or by a hidden unit's activation; hovering shows the top-5 predictions."""
    spans = []
    surprisal = ins.surprisal_bits()
    for i, c in enumerate(text):
        if neuron is None:
            s = min(1.0, surprisal[i] / 8)  # 8 bits or more: full red
            color = f"rgba(220,40,40,{s:.2f})"
        else:
            a = float(ins.hidden[i + 1, neuron[0], neuron[1]])
            color = f"rgba(40,90,220,{a:.2f})" if a >= 0 else f"rgba(230,120,20,{-a:.2f})"
        tip = f"{c!r}: p={math.exp(-surprisal[i] * LN2):.3f}, {surprisal[i]:.2f} bits; next guesses " + \
            ", ".join(f"{tok!r} {p:.2f}" for tok, p in ins.top(i))
        shown = "⏎\n" if c == "\n" else html.escape(c)
        spans.append(f'<span style="background:{color}" title="{html.escape(tip)}">{shown}</span>')
    what = "surprisal (red: the model did not expect it)" if neuron is None else \
        f"layer {neuron[0]} unit {neuron[1]} (blue: positive, orange: negative)"
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{font-family:monospace;font-size:15px;line-height:1.5;"
        "white-space:pre-wrap}span{border-radius:2px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Colour: {html.escape(what)}. "
        f"{ins.loss().nats:.4f} nats/char over {len(ins.target)} predictions. Hover a character for the "
        "model's top 5 guesses at it.</p><pre>" + "".join(spans) + "</pre></body></html>\n"
    )


def write_html(path: Path, ins: Inspection, text: str, title: str, neuron: tuple[int, int] | None) -> None:
    try:
        path.write_text(to_html(ins, text, title, neuron), encoding="utf-8")
    except OSError as e:
        raise CharrnnError(f"cannot write {path}: {e.strerror}") from None
