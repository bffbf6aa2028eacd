"""Training progress: a Rich live bar on a terminal, plain lines everywhere else.

Plain mode (stdout not a terminal, NO_COLOR set, or --quiet) prints one line per
quarter epoch and one per finished epoch, so logs and CI stay readable.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

EPOCH_HEADER = ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds", "img/s")


def format_epoch_row(row: dict) -> list[str]:
    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}%"

    def num(v):
        return "-" if v is None else f"{v:.4f}"

    return [f"{row['epoch']}/{row['epochs']}", num(row["train_loss"]), pct(row["train_acc"]),
            num(row["val_loss"]), pct(row["val_acc"]), f"{row['lr']:.3g}", f"{row['seconds']:.1f}",
            f"{row['images_per_s']:,.0f}"]


# Said when running a network's kernels for the first time in a process takes
# longer than this: Numba is then compiling them (a first run, or a new Numba
# version) rather than loading them from its cache.
COMPILE_NOTICE_AFTER_S = 3.0
COMPILE_NOTICE = ("compiling the kernels for this network (about 10 s, once: "
                  "later runs load them from Numba's cache)...")


@contextmanager
def compile_notice(say: Callable[[str], None]):
    """say(COMPILE_NOTICE) if the block is still running after COMPILE_NOTICE_AFTER_S."""
    timer = threading.Timer(COMPILE_NOTICE_AFTER_S, say, args=[COMPILE_NOTICE])
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def use_plain_output(quiet: bool) -> bool:
    return quiet or bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()


class PlainReporter:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._header_done = False

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def start_epoch(self, epoch: int, epochs: int, batches: int, done: int = 0) -> None:
        self._epoch, self._epochs, self._batches = epoch, epochs, batches
        quarter = max(batches // 4, 1)
        self._marks = set(range(quarter, batches, quarter))

    def batch(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        if done in self._marks:
            self.message(f"epoch {self._epoch}/{self._epochs} batch {done}/{self._batches} "
                         f"loss {loss:.4f} acc {100 * acc:.2f}% {images_per_s:,.0f} img/s")

    def end_epoch(self, row: dict) -> None:
        if not self._header_done:
            self.message("  ".join(f"{h:>10}" for h in EPOCH_HEADER))
            self._header_done = True
        self.message("  ".join(f"{c:>10}" for c in format_epoch_row(row)))

    def close(self) -> None:
        pass


class RichReporter(PlainReporter):
    """A bar per epoch (batches, running loss/accuracy, images/s, ETA) and a row per epoch."""

    def __init__(self, console: Console | None = None):
        super().__init__(console or Console())
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.2%}  {task.fields[speed]:,.0f} img/s"),
            TimeRemainingColumn(), console=self.console, transient=True,
        )
        self.task = None

    def start_epoch(self, epoch, epochs, batches, done=0):
        super().start_epoch(epoch, epochs, batches, done)
        if self.task is None:
            self.progress.start()
        else:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("train", total=batches, completed=done, epoch=f"{epoch}/{epochs}",
                                           loss=0.0, acc=0.0, speed=0.0)

    def batch(self, done, loss, acc, images_per_s):
        self.progress.update(self.task, completed=done, loss=loss, acc=acc, speed=images_per_s)

    def end_epoch(self, row):
        self.progress.console.print(self._row_text(row))

    def _row_text(self, row) -> str:
        cells = format_epoch_row(row)
        line = "  ".join(f"{c:>10}" for c in cells)
        if not self._header_done:
            self._header_done = True
            return "[bold]" + "  ".join(f"{h:>10}" for h in EPOCH_HEADER) + "[/bold]\n" + line
        return line

    def message(self, text):
        self.progress.console.print(text, markup=False, highlight=False)

    def close(self):
        if self.task is not None:
            self.progress.stop()


def make_reporter(quiet: bool) -> PlainReporter:
    return PlainReporter() if use_plain_output(quiet) else RichReporter()
