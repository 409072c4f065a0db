"""What the trainer shows: a progress bar per epoch, one table row per epoch, mirrored to train.log."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trainkit.registry.tasks import TASKS
from trainkit.utils.atomic import StorageError, open_no_follow


class _Bar:
    """Progress of one epoch: a live bar on a terminal, and every ``log_every`` batches a line
    (on the console when there is no bar, e.g. in CI logs; always in train.log)."""

    def __init__(self, log: "RunLog", epoch: int, total: int, log_every: int, progress: Progress | None):
        self.log, self.epoch, self.total, self.log_every = log, epoch, total, log_every
        self.progress = progress
        self.task = progress.add_task("train", total=total, loss="-", rate="-") if progress else None
        self.batches, self.images, self.t0 = 0, 0, time.perf_counter()

    def advance(self, loss, n):
        self.batches += 1
        self.images += n
        rate = self.images / max(time.perf_counter() - self.t0, 1e-9)
        if self.progress is not None:
            self.progress.update(self.task, advance=1, loss=f"{loss:.4f}", rate=f"{rate:,.0f}")
        if self.batches % self.log_every == 0 and self.batches < self.total:
            line = (f"  epoch {self.epoch}  batch {self.batches}/{self.total}  loss {loss:.4f}  "
                    f"{rate:,.0f} img/s")
            self.log.print(line, console=self.progress is None, highlight=False)


class RunLog:
    """Prints to the console (unless quiet) and to ``train.log`` without colour codes."""

    def __init__(self, console: Console, log_path: Path | None, quiet: bool = False):
        self.console, self.quiet = console, quiet
        self._file = None
        if log_path is not None:
            try:  # never through a link planted in the run directory (it could point anywhere)
                self._file = open(log_path, "a", encoding="utf-8", errors="backslashreplace", opener=open_no_follow)
            except OSError as exc:
                raise StorageError(log_path, exc, action="append to") from None
        self.file_console = Console(file=self._file, no_color=True, force_terminal=False, width=120,
                                    highlight=False, soft_wrap=True) if self._file else None
        self._cols: list[tuple[str, str, int]] = []

    def print(self, *objects, always: bool = False, console: bool = True, **kwargs) -> None:
        """Show on the console (unless quiet and not ``always``, or ``console`` is False) and
        append to train.log."""
        if console and (always or not self.quiet):
            self.console.print(*objects, **kwargs)
        if self.file_console is not None:
            self.file_console.print(*objects, **kwargs)
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self.file_console = None

    @contextlib.contextmanager
    def progress(self, epoch: int, total: int, log_every: int = 50):
        """A transient progress bar (batches, running loss, images/s, ETA) on a terminal, and a
        line every ``log_every`` batches (see :class:`_Bar`)."""
        if self.quiet or not self.console.is_terminal:
            yield _Bar(self, epoch, total, log_every, None)
            return
        progress = Progress(TextColumn(f"epoch {epoch}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} img/s"),
                            TimeRemainingColumn(), console=self.console, transient=True)
        with progress:
            yield _Bar(self, epoch, total, log_every, progress)

    def epoch_header(self, task: str, eval_split: str | None, metrics: tuple[str, ...] | None = None) -> None:
        """The table's title row: the loss and ``metrics`` (default: the task's console metrics), train and val."""
        shown = [TASKS[task].metric(name).column for name in (metrics or TASKS[task].console)]
        cols = [("epoch", "epoch", 5), ("train_loss", "train loss", 10)]
        cols += [(f"train_{c}", f"train {c}", 9) for c in shown]
        cols += [("val_loss", "val loss", 9)] + [(f"val_{c}", f"val {c}", 8) for c in shown]
        cols += [("lr", "lr", 9), ("seconds", "seconds", 7)]
        self._cols = cols
        if eval_split == "test":
            self.print("[dim]no validation split (data.val_split is 0): val columns are measured on the test "
                       "split[/]")
        self.print("  ".join(f"{title:>{w}}" for _, title, w in cols), style="bold")

    def epoch_row(self, row: dict, task: str, improved: bool) -> None:
        cells = []
        for key, _, w in self._cols:
            v = row.get(key)
            if v is None:
                text = "-"
            elif key == "epoch":
                text = str(v)
            elif key.endswith("_acc"):
                text = f"{100 * v:.2f}%"
            elif key == "lr":
                text = f"{v:.3g}"
            elif key == "seconds":
                text = f"{v:.1f}"
            else:
                text = f"{v:.4f}"
            cells.append(f"{text:>{w}}")
        self.print("  ".join(cells) + ("  *" if improved else ""), highlight=False)
