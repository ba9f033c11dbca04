"""`charrnn export`: the command line of exporting, through the API (Model.export_onnx, Model.export_web); no torch at
import, so --help stays instant."""

from __future__ import annotations

from pathlib import Path

import typer

from . import options as opt


def export(
    out: Path = typer.Argument(..., help="The .onnx file to write; with --web, the folder.", show_default=False),
    checkpoint: Path | None = opt.checkpoint_option(),
    web: bool = typer.Option(False, "--web", help="Write a static site instead: serve's co-writing page with the model "
                             "running in it, no server and no network (open OUT/index.html)."),
    quiet: bool = opt.quiet_option(),
):
    """Take the model out of charrnn: ONNX, or a page that writes by itself. For any ONNX runtime, or a browser."""
    from ..export.onnx import check_target
    from .loading import open_model
    from .render import note

    if not web:
        check_target(out)  # before the model is loaded
    model = open_model(checkpoint, quiet=quiet)
    if web:
        model.export_web(out)
        size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
        note(f"wrote {out}/index.html, model.js, local.js ({size / 1e6:.1f} MB) from {model.path}; open {out}/index.html",
             quiet)
        return
    note(f"wrote {model.export_onnx(out)} ({out.stat().st_size / 1e6:.1f} MB) from {model.path}", quiet)
