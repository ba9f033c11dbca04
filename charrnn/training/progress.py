"""What a person watches while training: a rich progress bar on stderr and a line per evaluation."""

from __future__ import annotations

import importlib.util
import math

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..scoring.metrics import EvalRecord, bits
from .run_state import Progress as TrainProgress
from .run_state import Reporter, end_score_split


def fmt_count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def fmt_num(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3f}"


class RichReporter(Reporter):
    """Draws training progress on `console` (stderr). quiet=True prints only warnings and the summary."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.bar: Progress | None = None
        self.task = None
        self.val_bpc = math.nan
        self.time_budget = None
        self.reader: Progress | None = None
        self.reader_tasks: dict[str, int] = {}

    READ_BAR_BYTES = 32 << 20  # smaller corpora are read too fast for a bar to help

    def reading(self, stage: str, done_bytes: int, total_bytes: int) -> None:
        if self.quiet or total_bytes < self.READ_BAR_BYTES:
            return
        if self.reader is None:
            self.reader = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                   TimeRemainingColumn(), console=self.console, transient=True)
            self.reader.start()
        if stage not in self.reader_tasks:
            self.reader_tasks[stage] = self.reader.add_task(f"{stage} corpus", total=total_bytes)
        self.reader.update(self.reader_tasks[stage], completed=done_bytes)
        if stage == "encoding" and done_bytes >= total_bytes:
            self._close_reader()

    def _close_reader(self) -> None:
        if self.reader is not None:
            self.reader.stop()
            self.reader = None

    def start(self, info: dict) -> None:
        self._close_reader()
        cfg, mc = info["config"], info["model_config"]
        self.time_budget = cfg.time_budget
        self.horizon = info["horizon_steps"]
        if self.quiet:
            return
        runtime = (f"{info['threads']} threads, " if info["device"] == "cpu" else "") + info["precision"]
        resumed = f", resumed at step {info['resumed_at']:,}" if info["resumed_at"] is not None else ""
        self.console.print(
            f"[bold]charrnn[/] {mc.cell} {mc.layers}x{mc.hidden} (embed {mc.embed}, {mc.regularisation.describe()}), "
            f"{fmt_count(info['params'])} params, vocab {info['vocab_size']}, on {info['device']} ({runtime}){resumed}\n"
            f"  corpus: {info['train_chars']:,} train + {info['val_chars']:,} validation chars; "
            f"batch {f'{cfg.batch_ramp} doubling to ' if cfg.batch_ramp else ''}{cfg.batch_size} x seq {cfg.seq_len}, "
            f"{info['steps_per_epoch']:,} steps/epoch{' at first' if cfg.batch_ramp else ''}; "
            f"lr {cfg.lr:g}, seed {cfg.seed}; writing to {escape(info['out'])}",
            highlight=False,
        )
        if not live_bar_possible(self.console):
            return
        self.bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=None if (self.horizon or self.time_budget) else 20),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        total = float(self.time_budget) if self.time_budget else (float(self.horizon) if self.horizon else None)
        self.task = self.bar.add_task("training", total=total, status="")
        self.bar.start()

    def step(self, progress: TrainProgress, fraction, train_loss: float, chars_per_s: float, lr: float) -> None:
        if self.bar is None:
            return
        if self.time_budget:
            completed = progress.elapsed
        elif self.horizon:
            completed = progress.step
        else:
            completed = None
        total = f"/{self.horizon:,}" if self.horizon else ""
        status = (f"step {progress.step:,}{total}  epoch {progress.epoch}  loss {fmt_num(train_loss)}  "
                  f"val {fmt_num(self.val_bpc)} bpc  {fmt_count(chars_per_s)} chars/s")
        self.bar.update(self.task, completed=completed, status=status)

    def evaluation(self, record: EvalRecord, sample: str) -> None:
        self.val_bpc = math.nan if record.val_bpc is None else record.val_bpc
        if self.quiet:
            return
        val = "no validation" if record.val_loss is None else \
            f"val {record.val_loss:.4f} nats/char = {record.val_bpc:.4f} bpc"
        if record.ema_val_loss is not None:
            val += f", averaged {record.ema_val_loss:.4f}"
        self.console.print(
            f"[bold]step {record.step:,}[/] ({fmt_count(record.chars_seen)} chars, {record.elapsed:.0f}s)  "
            f"train {record.train_loss:.4f}  [green]{val}[/]  lr {record.lr:.2e}",
            highlight=False,
        )
        if sample:
            text = sample.replace("\n", " ⏎ ")
            self.console.print(f"  [dim]{escape(text[:160])}[/]", highlight=False)

    def message(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {escape(text)}", highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def _early_stop(self, p) -> str:
        share = f" at {p.elapsed / self.time_budget:.0%} of the time budget" if self.time_budget else ""
        return (f"stopped early{share}: validation has not improved for {p.bad_evals} evaluations, so the rest "
                f"would only fit the training text closer; kept the best model (--patience 0 spends it all)")

    def end(self, summary: dict) -> None:
        self.close()
        p = summary["progress"]
        why = {"budget": "budget reached", "time": "time budget reached", "patience": "validation stopped improving",
               "cap": f"reached the cap of {p.epoch} epochs", "interrupted": "interrupted",
               "stopped": "stopped by on_eval",
               "early": self._early_stop(p)}.get(p.stopped, p.stopped)
        best = "no validation"
        if not math.isnan(summary["best_val_bpc"]):
            best = f"best val {summary['best_val_bpc']:.4f} bpc at step {p.best_step:,}"
            if math.isfinite(p.final_val):  # evaluations scored a fixed sample; this is the whole split
                best = (f"best val {bits(p.final_val):.4f} bpc on {end_score_split(p.final_chars)} at step {p.best_step:,} "
                        f"(chosen on a sample of {p.val_sample:,} chars: {summary['best_val_bpc']:.4f})")
        watched = f"; evaluations and checkpoints took {p.watch_s:.1f}s ({p.watch_s / p.elapsed:.0%} of it)" if p.elapsed else ""
        self.console.print(
            f"[bold]done[/] ({why}): {p.step:,} steps, {fmt_count(p.chars_seen)} chars in {p.elapsed:.0f}s "
            f"({fmt_count(summary['chars_per_s'])} chars/s){watched}; {best}\n"
            f"  saved {escape(summary['out'])}/best.pt and last.pt",
            highlight=False,
        )


def live_bar_possible(console: Console) -> bool:
    """rich draws a live bar on a terminal, and in a notebook through ipywidgets only (without it rich warns and draws
    nothing): there the evaluations' lines alone show progress."""
    return not console.is_jupyter or importlib.util.find_spec("ipywidgets") is not None


def terminal_reporter(quiet: bool, tensorboard: bool = False) -> Reporter:
    """What `charrnn train` reports to: the terminal (stderr), and TensorBoard's event files with --tensorboard (a
    UsageError at once where the tensorboard package is missing, before anything is read or written)."""
    from ..console import stderr_console

    reporter = RichReporter(stderr_console(), quiet=quiet)
    if tensorboard:
        from .tensorboard_log import TensorBoardReporter

        reporter = TensorBoardReporter(reporter)
    return reporter

