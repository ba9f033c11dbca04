"""Output heads: the last hidden states -> the next character's distribution, and the training loss.

Every head has one contract (CharRNN and everything downstream rely on nothing else):
- forward(h (..., hidden)) -> scores (..., V) in vocabulary order whose softmax is the model's
  distribution: logits for `full`, exact log-probabilities for `adaptive` (whose softmax is
  themselves). So sampling at any temperature, top-k/top-p, eval, score, inspect, dynamic
  evaluation and the ONNX export read either head alike, exactly.
- nll(h (N, hidden), y (N,)) -> each target's negative log-likelihood in nats, (N,) float32, 0 where y is
  IGNORE: computed the cheapest exact way, without the whole distribution (training, eval, score).
- grown(weights, prefix, old, new): a checkpoint's head weights for a vocabulary grown from `old` to `new`
  characters (train --init), each new character starting unlikely (finetune.NEW_CHAR_SHARE).

`full` is one linear layer over the vocabulary. `adaptive` is the adaptive softmax of Grave et al.
(2017, "Efficient softmax approximation for GPUs"): characters are ranked by their frequency in the
training text; the most frequent (the shortlist) and one entry per tail cluster share a full-width head,
and the rarer characters sit in tail clusters behind a narrower projection (hidden / 4, / 16, ...).
Most training targets are frequent, so most of the output layer's work shrinks to the head's width;
a rare target costs its cluster too. torch has nn.AdaptiveLogSoftmaxWithLoss; this head is written here
because it keeps vocabulary ids (a rank buffer maps them, so data and checkpoints do not change order),
gives tail clusters biases (a new character added by --init starts unlikely, as in the full head), and
builds log-probabilities from concatenations that export to ONNX.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Tail clusters begin where the characters ranked so far cover these shares of the training text.
CLUSTER_COVER = (0.9, 0.99)
MIN_SHORTLIST = 256  # characters the head always holds: a smaller vocabulary gains nothing from clusters
MIN_CLUSTER = 64  # a tail cluster of fewer characters joins the one before it
PROJECTION_DIVISOR = 4  # tail cluster i (from 0) projects hidden units to hidden / 4 ** (i + 1)
MIN_PROJECTION = 16
IGNORE = -100  # a target not scored (padding, burn-in): torch's ignore_index


class FullHead(nn.Linear):
    """Logits over the whole vocabulary. Its weights are `head.weight` and `head.bias`, as before heads existed."""

    def __init__(self, hidden: int, vocab_size: int, cutoffs: tuple[int, ...] = (), counts: np.ndarray | None = None):
        super().__init__(hidden, vocab_size)
        nn.init.zeros_(self.bias)

    def nll(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(h).float(), y, ignore_index=IGNORE, reduction="none")

    @staticmethod
    def num_params(hidden: int, vocab_size: int, cutoffs: tuple[int, ...]) -> int:
        return hidden * vocab_size + vocab_size

    @staticmethod
    def grown(w: dict[str, torch.Tensor], prefix: str, old: int, new: int, share: float) -> None:
        """New rows: the old characters' mean (EOS left out), bias lowered by log(1 / share). By Jensen's
        inequality each new character then starts with at most share / (old - 1) of the mass."""
        weight, bias = w[prefix + "weight"], w[prefix + "bias"]
        w[prefix + "weight"], w[prefix + "bias"] = _grow_rows(weight, bias, slice(1, old), new - old, share)

    @staticmethod
    def reordered(w: dict[str, torch.Tensor], prefix: str, order: torch.Tensor) -> None:
        """Id i's row becomes row order[i] of before (labels move up as --init adds characters: finetune)."""
        w[prefix + "weight"], w[prefix + "bias"] = w[prefix + "weight"][order], w[prefix + "bias"][order]


class AdaptiveHead(nn.Module):
    """Adaptive softmax over ranks (0 = the most frequent character); `rank` maps vocabulary ids to ranks.

    cutoffs: the ranks where tail clusters begin, increasing, each below vocab_size; cutoffs[0] is the
    shortlist's size. Tail cluster i holds ranks cutoffs[i] up to the next cutoff (or vocab_size).
    counts (V,): each id's count in the training text, which ranks them (a loaded checkpoint brings its ranks).
    """

    def __init__(self, hidden: int, vocab_size: int, cutoffs: tuple[int, ...], counts: np.ndarray | None = None):
        super().__init__()
        if not cutoffs or list(cutoffs) != sorted(set(cutoffs)) or cutoffs[0] < 1 or cutoffs[-1] >= vocab_size:
            raise ValueError(f"adaptive softmax cutoffs {cutoffs} do not split a vocabulary of {vocab_size}")
        self.shortlist, self.bounds = cutoffs[0], (*cutoffs, vocab_size)
        self.head = nn.Linear(hidden, self.shortlist + len(cutoffs))
        nn.init.zeros_(self.head.bias)
        self.tail = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, projection(hidden, i), bias=False), nn.Linear(projection(hidden, i), hi - lo))
            for i, (lo, hi) in enumerate(zip(self.bounds, self.bounds[1:], strict=False)))
        for cluster in self.tail:
            nn.init.zeros_(cluster[1].bias)
        rank = torch.arange(vocab_size) if counts is None else torch.from_numpy(frequency_ranks(np.asarray(counts)))
        self.register_buffer("rank", rank.long())
        self.register_buffer("starts", torch.tensor(cutoffs), persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        top = F.log_softmax(self.head(h).float(), -1)
        parts = [top[..., : self.shortlist]]
        for i, cluster in enumerate(self.tail):
            parts.append(F.log_softmax(cluster(h).float(), -1) + top[..., self.shortlist + i, None])
        return torch.cat(parts, -1).index_select(-1, self.rank)

    def nll(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Every target is scored by the head; a rare one also by its own cluster, on its rows only."""
        r = self.rank[y.clamp(min=0)]
        cluster = torch.searchsorted(self.starts, r, right=True) - 1  # -1: in the shortlist
        in_head = torch.where(cluster < 0, r, self.shortlist + cluster)
        nll = -F.log_softmax(self.head(h).float(), -1).gather(1, in_head[:, None])[:, 0]
        for i, tail in enumerate(self.tail):  # a cluster without targets still runs (on no rows): under DDP every
            rows = (cluster == i).nonzero()[:, 0]  # parameter must take part in every step
            lp = F.log_softmax(tail(h.index_select(0, rows)).float(), -1)
            nll = nll.index_add(0, rows, lp.gather(1, (r.index_select(0, rows) - self.bounds[i])[:, None])[:, 0], alpha=-1)
        return nll.masked_fill(y == IGNORE, 0.0)

    @staticmethod
    def num_params(hidden: int, vocab_size: int, cutoffs: tuple[int, ...]) -> int:
        bounds = (*cutoffs, vocab_size)
        n = (hidden + 1) * (cutoffs[0] + len(cutoffs))
        for i, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
            d = projection(hidden, i)
            n += hidden * d + (d + 1) * (hi - lo)
        return n

    @staticmethod
    def grown(w: dict[str, torch.Tensor], prefix: str, old: int, new: int, share: float) -> None:
        """New characters rank last, so they join the last cluster: its rows' mean, bias lowered (as FullHead's)."""
        last = sum(1 for k in w if k.startswith(prefix + "tail.") and k.endswith(".1.weight")) - 1
        key = f"{prefix}tail.{last}.1."
        w[key + "weight"], w[key + "bias"] = _grow_rows(w[key + "weight"], w[key + "bias"], slice(None), new - old, share)
        rank = w[prefix + "rank"]
        w[prefix + "rank"] = torch.cat([rank, torch.arange(old, new, dtype=rank.dtype)])

    @staticmethod
    def reordered(w: dict[str, torch.Tensor], prefix: str, order: torch.Tensor) -> None:
        """Id i takes the rank of id order[i] before (the clusters' rows follow ranks, not ids)."""
        w[prefix + "rank"] = w[prefix + "rank"][order]


HEADS: dict[str, type] = {"full": FullHead, "adaptive": AdaptiveHead}


def head_class(softmax: str | None) -> type:
    """The head a ModelConfig's softmax names (None: a checkpoint from before heads existed, full)."""
    return HEADS[softmax or "full"]


def projection(hidden: int, cluster: int) -> int:
    return max(MIN_PROJECTION, hidden // PROJECTION_DIVISOR ** (cluster + 1))


def _grow_rows(weight: torch.Tensor, bias: torch.Tensor, rows: slice, k: int, share: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    low = bias[rows].mean() - math.log(1 / share)
    return (torch.cat([weight, weight[rows].mean(0, keepdim=True).expand(k, -1)]), torch.cat([bias, low.expand(k)]))


def frequency_ranks(counts: np.ndarray) -> np.ndarray:
    """counts (V,) of each id in the training text -> each id's rank (0: the most frequent; ties by id)."""
    order = np.argsort(-counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank


def cutoffs_for(counts: np.ndarray) -> tuple[int, ...]:
    """Where tail clusters begin (ranks) for a vocabulary with these counts: at CLUSTER_COVER of the text, the
    shortlist at least MIN_SHORTLIST, no cluster under MIN_CLUSTER; () when the vocabulary is too small to split."""
    v = len(counts)
    cover = np.cumsum(np.sort(counts)[::-1]) / max(counts.sum(), 1)
    cuts: list[int] = []
    for share in CLUSTER_COVER:
        at = max(int(np.searchsorted(cover, share)) + 1, MIN_SHORTLIST, cuts[-1] + MIN_CLUSTER if cuts else 0)
        if at + MIN_CLUSTER <= v:
            cuts.append(at)
    return tuple(cuts)
