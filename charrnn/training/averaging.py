"""Weight averaging: an exponential moving average (EMA) of the weights, kept beside them while training.

Late in training the weights wander around a minimum with the noise of each batch; their running
average sits nearer its centre, and often scores better than any single step's weights. The
trainer evaluates both and keeps whichever is better in best.pt.
"""

from __future__ import annotations

import contextlib

import torch

from ..model.network import CharRNN


class WeightAverage:
    """avg <- avg + (1 - d) (weights - avg) after every optimizer step, with d = min(decay, (1 + n) / (10 + n))
    so that the first updates, when the average is only the initial weights, count less."""

    def __init__(self, model: CharRNN, decay: float):
        self.params = list(model.parameters())
        self.avg = [p.detach().clone() for p in self.params]
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.avg, self.params, 1 - d)

    @contextlib.contextmanager
    @torch.no_grad()
    def swapped_in(self):
        """Within the block the model holds the averaged weights; its own come back afterwards."""
        own = [p.detach().clone() for p in self.params]
        torch._foreach_copy_(self.params, self.avg)
        try:
            yield
        finally:
            torch._foreach_copy_(self.params, own)

    def state_dict(self) -> dict:
        return {"avg": [a.detach().cpu() for a in self.avg], "updates": self.updates}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        torch._foreach_copy_(self.avg, [a.to(p.device) for a, p in zip(state["avg"], self.params, strict=True)])
        self.updates = state["updates"]
