"""Comparing the scenario's outputs with the goldens on a CPU other than the recording one.

Float arithmetic differs between instruction sets (AVX2, AVX-512, AMX: other GEMM blocking, other
vector widths, so other summation orders), so the same run gives figures that differ in their last
digits. Elsewhere than on the recording platform the goldens are still compared, with these tolerances:

- Text must be equal, and so must every integer (steps, counts, positions, ids).
- A decimal figure may differ by REL of its size plus one unit in its last printed place. Under
  oneDNN's and ATen's AVX2 caps, and on an AMD EPYC with AVX-512 against the Intel recording machine,
  the scenario's figures differ by at most one unit in the last printed place (the values underneath
  by about 3e-7 relative); REL = 1e-5 leaves a factor of 30 beyond that for CPUs whose GEMMs round
  differently again, and is still ten times smaller than what a learning rate 1% off does to the
  metrics (1e-4 relative at the first evaluation, measured on the lstm run).
- A sampled text is compared up to the first draw that a perturbation of DRAW_MARGIN in the
  probabilities could have changed (DrawWatch finds it while the command runs): the uniform number
  within DRAW_MARGIN of its character's interval edge, greedy's two likeliest within DRAW_MARGIN,
  or a top-k or top-p cut that close. Such draws are rare (about 2 x DRAW_MARGIN per draw), so almost
  every sample is compared whole.
"""

from __future__ import annotations

import json
import math
import re
from contextlib import contextmanager

REL = 1e-5
DRAW_MARGIN = 1e-5
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _close(a: str, b: str) -> bool:
    """Two number tokens: integers equal; decimals within REL plus one unit in the last printed place."""
    if a == b:
        return True
    if "." not in a + b and "e" not in (a + b).lower():
        return False
    x, y = float(a), float(b)
    places = max(len(t.split(".")[1].lower().split("e")[0]) if "." in t else 0 for t in (a, b))
    return math.isclose(x, y, rel_tol=REL, abs_tol=1.000001 * 10.0 ** -places)


def difference(golden: str, actual: str) -> str | None:
    """None when `actual` equals `golden` within the tolerances, else where they first differ."""
    g, a = NUMBER.split(golden), NUMBER.split(actual)
    gn, an = NUMBER.findall(golden), NUMBER.findall(actual)
    if len(g) != len(a):
        return f"the number of figures differs: {len(gn)} recorded, {len(an)} now"
    for i, (gt, at) in enumerate(zip(g, a, strict=True)):
        if gt != at:
            return f"text differs: {gt[:60]!r} recorded, {at[:60]!r} now"
        if i < len(gn) and not _close(gn[i], an[i]):
            return f"figure {i} differs beyond the tolerance: {gn[i]} recorded, {an[i]} now"
    return None


def sample_difference(golden: str, actual: str, prime: str, fragile_at: int | None) -> str | None:
    """difference() for a sample command's output, given the first fragile draw (None: none).

    Before the fragile draw every sample's text is determined; from it on the samples may differ.
    JSON lines: each sample's fields other than text and ended equal, its text up to the fragile
    draw. Plain text: the first sample's prime and its characters before the fragile draw.
    """
    if fragile_at is None:
        return difference(golden, actual)
    if golden.startswith("{"):
        g, a = ([json.loads(line) for line in out.splitlines()] for out in (golden, actual))
        if len(g) != len(a):
            return f"{len(g)} samples recorded, {len(a)} now"
        for rg, ra in zip(g, a, strict=True):
            fixed = [k for k in rg if k not in ("text", "ended")]
            if [rg[k] for k in fixed] != [ra.get(k) for k in fixed] or rg["text"][:fragile_at] != ra["text"][:fragile_at]:
                return f"sample {rg.get('index')} differs before draw {fragile_at}: {rg} recorded, {ra} now"
        return None
    end = len(prime) + fragile_at
    if golden[:end] != actual[:end]:
        return f"differs before draw {fragile_at}: {golden[:end]!r} recorded, {actual[:end]!r} now"
    return None


def draw_margin(logits, cfg, u) -> float:
    """How far the draws of one call (rows of logits (B, V)) are from turning out otherwise, in probability."""
    import torch

    from charrnn.writing.sample import draw_probs

    if cfg.greedy:
        top = torch.softmax(logits.float(), -1).topk(2, dim=-1).values
        return float((top[:, 0] - top[:, 1]).min())
    margins = []
    tempered = torch.softmax(logits.float() / cfg.temperature, -1).sort(dim=-1, descending=True).values
    if cfg.top_k is not None and cfg.top_k < logits.shape[-1]:
        margins.append(tempered[:, cfg.top_k - 1] - tempered[:, cfg.top_k])
    if cfg.top_p is not None and cfg.top_p < 1:
        kept = tempered[:, : cfg.top_k] if cfg.top_k else tempered
        before = (kept / kept.sum(-1, keepdim=True)).cumsum(-1) - kept / kept.sum(-1, keepdim=True)
        margins.append((before - cfg.top_p).abs().min(-1).values)
    probs = draw_probs(logits, cfg)
    cdf = probs.cumsum(-1) / probs.sum(-1, keepdim=True)
    at = torch.searchsorted(cdf, u, right=True).clamp_max(cdf.shape[-1] - 1)
    hi = cdf.gather(1, at)
    lo = torch.where(at > 0, cdf.gather(1, (at - 1).clamp_min(0)), torch.zeros_like(hi))
    margins.append(torch.minimum(u - lo, hi - u).squeeze(1))
    return float(torch.stack([m.float() for m in margins]).min())


class DrawWatch:
    """Wraps charrnn.writing.sample.next_ids while sample commands run, noting for each the first draw (its step) whose
    outcome a perturbation of DRAW_MARGIN could change. It draws the same uniform numbers next_ids would."""

    def __init__(self):
        self.fragile: dict[str, int | None] = {}

    @contextmanager
    def watching(self, name: str):
        import torch

        from charrnn.writing import sample

        original, calls = sample.next_ids, [0]
        self.fragile[name] = None

        def watched(logits, cfg, generator, u=None):
            if u is None and not cfg.greedy:
                u = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device, dtype=torch.float32)
            if self.fragile[name] is None and draw_margin(logits, cfg, u) < DRAW_MARGIN:
                self.fragile[name] = calls[0]
            calls[0] += 1
            return original(logits, cfg, generator, u)

        sample.next_ids = watched
        try:
            yield
        finally:
            sample.next_ids = original
