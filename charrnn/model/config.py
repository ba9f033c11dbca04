"""The network's shape and regularisation (ModelConfig), saved in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UsageError
from ..settings import setting
from .cells import CELLS, get_cell


@dataclass(frozen=True)
class Regularisation:
    """What a model's training is held back by: ModelConfig's fields of the same names."""

    dropout: float
    weight_drop: float = 0.0

    def describe(self) -> str:
        """'dropout P', with the weight drop when there is one (as info, progress and sizing notes show it)."""
        return f"dropout {self.dropout}" + (f", weight drop {self.weight_drop}" if self.weight_drop else "")


# ModelConfig.softmax: heads.HEADS' names (tests/test_heads.py checks), and auto, resolved when a run starts.
# A saved config without one (None) is the full softmax every checkpoint had before.
SOFTMAX = ("auto", "full", "adaptive")


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape. The defaults won a sweep on tinyshakespeare with a 10-minute CPU budget (docs/results.md)."""

    vocab_size: int
    cell: str = setting("lstm", "Recurrent cell.", choices=CELLS)
    layers: int = setting(1, "Stacked recurrent layers.")
    hidden: int = setting(512, "Hidden units per layer.")
    embed: int = setting(64, "Character embedding size.")
    dropout: float = setting(0.1, "Dropout on embeddings, between layers and before the output.")
    weight_drop: float = setting(0.0, "DropConnect on the recurrent (hidden-to-hidden) weights: a share of them "
                                 "dropped for each training window.")
    softmax: str | None = setting(None, "Output layer: full; adaptive (frequent characters in a full-width head, rare "
                                  "ones in narrower clusters: for large vocabularies such as Chinese); or auto: "
                                  "adaptive where it trains faster on this device, measured. (default: auto)",
                                  choices=SOFTMAX)
    # Adaptive softmax: the frequency ranks where tail clusters begin (heads.cutoffs_for), set with the vocabulary.
    cutoffs: tuple[int, ...] = ()

    def __post_init__(self):
        get_cell(self.cell)  # an unknown cell is an error here, not a wrong model later
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))  # a checkpoint may hold a list
        for name in ("dropout", "weight_drop"):
            p = getattr(self, name)
            if not (0 <= p < 1):
                raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1), got {p:g}")

    @property
    def regularisation(self) -> Regularisation:
        return Regularisation(self.dropout, self.weight_drop)

    def describe_softmax(self) -> str:
        """'full softmax', or the adaptive softmax's split, as info and train's notes show it."""
        if not self.cutoffs:
            return "full softmax"
        return f"adaptive softmax ({self.cutoffs[0]:,} characters in the head, {len(self.cutoffs)} tail cluster(s))"

    def to_dict(self) -> dict:
        return asdict(self)
