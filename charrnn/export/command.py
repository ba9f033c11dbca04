"""`charrnn export`: the command line of exporting (no torch at import: --help stays instant)."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import options as opt


def export(
    out: Path = typer.Argument(..., help="The .onnx file to write.", show_default=False),
    checkpoint: Path | None = opt.checkpoint_option(),
    quiet: bool = opt.quiet_option(),
):
    """Take the model out of charrnn: the one-step model as ONNX. For onnxruntime and any ONNX runtime (README, Export)."""
    from ..inference import open_model
    from ..render import note
    from .onnx import check_target, export_onnx

    check_target(out)
    path, model, vocab, ckpt = open_model(checkpoint, quiet=quiet)
    note(f"wrote {export_onnx(model, vocab, ckpt, out)} ({out.stat().st_size / 1e6:.1f} MB) from {path}", quiet)
