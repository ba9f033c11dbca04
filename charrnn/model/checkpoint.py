"""Checkpoints: one self-contained file per snapshot, written atomically, loaded without running code.

Layout (a plain dict of tensors, numbers, strings, lists and dicts):
    format: "charrnn", version: FORMAT_VERSION
    model_config, train_config: dicts of the frozen dataclasses
    vocab: list of characters (EOS is implicit at id 0)
    model, optimizer: state_dicts
    progress: step, epoch, window, chars_seen, elapsed, best_val, bad_evals, lr_scale, ...
    rng: torch generator states; state: the carried hidden state (for exact resume)
    corpus: fingerprint, files, characters; metrics: list of evaluation records
    base (fine-tuned runs only): the model it started from (finetune.lineage)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch

from ..errors import CharrnnError, UsageError

FORMAT = "charrnn"
FORMAT_VERSION = 1
BUNDLED = Path(__file__).resolve().parent.parent / "models" / "base.pt"  # weights in half precision, no optimizer state
BUNDLED_NAME = "base"  # what -c and --init call it


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """Write `payload` to `path` atomically: temp file in the same folder, fsync, rename, fsync folder.

    A crash at any moment leaves either the old file or the new one under `path`, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise CharrnnError(
                f"could not write checkpoint {path}: {e.strerror or e}; free disk space or choose another --out"
            ) from None
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint onto the CPU, whatever device wrote it.

    Uses torch's weights-only unpickler, so a file that would construct arbitrary objects (and so
    could run code) is refused. Raises UsageError for anything that is not a readable charrnn checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such checkpoint; train one first (charrnn train FILE) or pass -c PATH")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory without best.pt or last.pt; pass a .pt file or a run directory")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; our errors say enough
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():
            raise UsageError(
                f"{path}: refused: the file holds objects other than tensors and plain data, which could run code; "
                "only load checkpoints written by charrnn"
            ) from None
        raise UsageError(
            f"{path}: not a readable checkpoint: its data is not what torch.save writes; "
            "use best.pt or last.pt from a charrnn run"
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, IndexError, KeyError):
        raise UsageError(
            f"{path}: not a readable checkpoint: the file is truncated, corrupted or not a PyTorch file; "
            "use best.pt or last.pt from a charrnn run"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UsageError(f"{path}: not a charrnn checkpoint; pass a file written by charrnn train")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UsageError(
            f"{path}: checkpoint format version {version} is newer than this charrnn reads ({FORMAT_VERSION}); upgrade charrnn"
        )
    return ckpt


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks: what names a checkpoint in a fine-tuned run's lineage."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundled_model() -> Path:
    """The base model that ships with charrnn (models/README.md: how `make base` made it)."""
    if not BUNDLED.is_file():
        raise UsageError(f"the bundled base model is missing from this installation ({BUNDLED}); rebuild it with make base")
    return BUNDLED


def resolve_checkpoint(path: str | Path | None, root: str | Path = "checkpoints", bundled_fallback: bool = False) -> Path:
    """A .pt file, a run directory (its best.pt, else last.pt), or BUNDLED_NAME for the bundled base model;
    None means the most recent run under `root`, or with bundled_fallback the bundled model when there is none."""
    if path is None:
        root = Path(root)
        runs = [p for p in root.glob("*/*.pt") if p.name in ("best.pt", "last.pt")] if root.is_dir() else []
        if not runs and bundled_fallback and BUNDLED.is_file():
            return BUNDLED
        if not runs:
            raise UsageError(f"no trained model under {root}/; train one first (charrnn train FILE) or pass -c PATH")
        newest = max(runs, key=lambda p: p.stat().st_mtime).parent
        path = newest
    path = Path(path)
    if str(path) == BUNDLED_NAME and not path.exists():
        return bundled_model()
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
    return path


def run_name(path: Path) -> str:
    """A checkpoint's name for people and other programs: its run directory's ("base" for the bundled model)."""
    if path.resolve() == BUNDLED.resolve():
        return "base"
    return path.parent.name if path.name in ("best.pt", "last.pt") else path.stem
