"""Loss curves: a PNG (matplotlib, the optional extra `charrnn[plot]`) and a compact chart for the terminal.

Both read runs' metrics.jsonl: training and validation bits per character at each evaluation,
against characters seen and against training time, one colour per run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import UsageError
from ..scoring.metrics import EvalRecord


def load_run(path: Path) -> tuple[str, list[EvalRecord]]:
    """(name, evaluation records) of a run directory, or of the run holding a .pt file."""
    run = path.parent if path.suffix == ".pt" else path
    metrics = run / "metrics.jsonl"
    if not metrics.exists():
        raise UsageError(f"{path}: no metrics.jsonl there; give a run directory written by charrnn train")
    records = []
    for line in metrics.read_text(encoding="utf-8").splitlines():
        try:
            records.append(EvalRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError, AttributeError):
            raise UsageError(f"{metrics}: a line is not JSON; the file is damaged") from None
    if not records:
        raise UsageError(f"{metrics}: no evaluations yet; plot again after the first one")
    return run.name or str(run), records


def _series(records: list[EvalRecord], view: str, x: str) -> tuple[list[float], list[float]]:
    """The (x, bpc) points of one view of the records ("val_bpc" or "train_bpc") where it is a number."""
    xs, ys = [], []
    for r in records:
        v = getattr(r, view)
        if v is not None and math.isfinite(v):
            xs.append(getattr(r, x))
            ys.append(v)
    return xs, ys


def write_png(runs: list[tuple[str, list[EvalRecord]]], out: Path, width: int = 1000, height: int = 400) -> None:
    """Two panels, bpc against characters seen and against minutes; solid validation, dashed training."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plotting needs matplotlib: pip install 'charrnn[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only: never a window
    import matplotlib.pyplot as plt

    dpi = 100
    fig, axes = plt.subplots(1, 2, figsize=(width / dpi, height / dpi), dpi=dpi)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, records) in enumerate(runs):
        c = colours[i % len(colours)]
        for ax, x, scale in ((axes[0], "chars_seen", 1e6), (axes[1], "elapsed", 60)):
            xs, ys = _series(records, "val_bpc", x)
            ax.plot([v / scale for v in xs], ys, color=c, marker="o", markersize=3, label=f"{name} val")
            xs, ys = _series(records, "train_bpc", x)
            ax.plot([v / scale for v in xs], ys, color=c, linestyle="--", alpha=0.7, label=f"{name} train")
    axes[0].set_xlabel("characters seen (millions)")
    axes[1].set_xlabel("training time (minutes)")
    for ax in axes:
        ax.set_ylabel("bits per character")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    tmp = out.with_name(out.name + ".tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(out)  # a viewer never sees a half-written image
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {out}: {e.strerror}") from None
    finally:
        plt.close(fig)


MARKS = "●◆▲■✚✱"
STYLES = ("cyan", "magenta", "yellow", "green", "red", "blue")


def terminal_chart(runs: list[tuple[str, list[EvalRecord]]], width: int = 60, height: int = 12):
    """Validation bpc against characters seen as a rich Text chart, one mark and colour per run."""
    from rich.text import Text

    points = [(i, x, y) for i, (_, recs) in enumerate(runs) for x, y in zip(*_series(recs, "val_bpc", "chars_seen"),
                                                                            strict=True)]
    out = Text()
    if not points:
        return out.append("no validation losses to plot\n")
    x_max = max(x for _, x, _ in points) or 1
    y_lo, y_hi = min(y for *_, y in points), max(y for *_, y in points)
    y_hi = y_hi if y_hi > y_lo else y_lo + 1
    grid: list[list[tuple[str, str] | None]] = [[None] * width for _ in range(height)]
    for i, x, y in points:
        col = min(width - 1, int(x / x_max * (width - 1)))
        row = min(height - 1, int((y_hi - y) / (y_hi - y_lo) * (height - 1)))
        grid[row][col] = (MARKS[i % len(MARKS)], STYLES[i % len(STYLES)])
    for r, cells in enumerate(grid):
        label = y_hi - (y_hi - y_lo) * r / (height - 1)
        out.append(f"{label:6.3f} │", style="dim")
        for cell in cells:
            out.append(cell[0], style=cell[1]) if cell else out.append(" ")
        out.append("\n")
    out.append("       └" + "─" * width + "\n", style="dim")
    out.append(f"        0{'characters seen':^{width - 10}}{x_max / 1e6:.1f}M\n", style="dim")
    for i, (name, _) in enumerate(runs):
        out.append(f"  {MARKS[i % len(MARKS)]} {name}", style=STYLES[i % len(STYLES)])
    return out.append("   (validation bpc)\n")
