"""Which model a command uses: -c's checkpoint, else the newest run under checkpoints/, else the bundled base model
(said on stderr), loaded through the API (charrnn.load)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..api.model import Model


def open_model(checkpoint: Path | None, device: str = "cpu", threads: int | None = None, quiet: bool = False) -> Model:
    """The model -c names (a .pt file or run directory); without -c, the newest run's, or the bundled base model when
    there is none, said on stderr unless quiet."""
    from ..api.model import load
    from ..model.checkpoint import BUNDLED, resolve_checkpoint
    from .render import note

    path = resolve_checkpoint(checkpoint, bundled_fallback=True)
    if checkpoint is None and path == BUNDLED:
        note("no trained model under checkpoints/: using the bundled base model (Shakespeare and names; charrnn info "
             "-c base); train your own with charrnn train FILE", quiet)
    return load(path, device=device, threads=threads)
