"""Dynamic evaluation's settings (DynamicConfig): how the weights keep learning from the text being scored."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import setting


@dataclass(frozen=True)
class DynamicConfig:
    """Dynamic evaluation (dynamic.py): how the weights keep learning from the text being scored.
    The defaults were measured on tinyshakespeare's validation text (docs/scoring.md, "Dynamic evaluation")."""

    rule: str = setting("rms", "Update rule: rms (gradients scaled by their running RMS) or sgd.",
                        flags=("--dynamic-rule",))
    lr: float = setting(5e-4, "Step size of each update.", flags=("--dynamic-lr",))
    segment: int = setting(32, "Characters scored between updates.", flags=("--dynamic-segment",))
    decay: float = setting(0.001, "Pull toward the trained weights at each update (0: none).", flags=("--dynamic-decay",))
