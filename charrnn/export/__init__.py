"""Taking a trained model out of charrnn: the one-step model as ONNX (onnx.py), or a page that writes with it (web.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import CharrnnError


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through a temporary file beside it, renamed into place: nobody sees half a file, and a failure
    (a full disk, a folder it may not write) leaves no temporary file behind and is one line naming the fix."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CharrnnError(f"could not write {path}: {e.strerror or e}; free disk space or choose another place") from None
