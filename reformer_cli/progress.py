"""Progress display: a rich bar on a terminal, plain periodic lines otherwise (logs, CI, SLURM).

rich shows only the final state of a live display when output is not a terminal
(docs/runner.md, "Progress display"), so 'auto' picks the bar only when stderr is a terminal.

A plain line carries everything a log reader needs: `step 120/300  loss 4.85  accuracy 0.0081
tokens/s 12,345  elapsed 0:42  eta 1:03` (elapsed: since this process started training; eta: the
remaining steps at the rate so far, evaluations included). The bar shows the same from step 0;
while it is on screen, log messages (a stop request, a W&B note, validation lines) are printed
above it, never onto its line, and `finish` takes the bar down before the last message.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("reformer")


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)


def _fmt(fields: dict[str, Any]) -> str:
    return "  ".join(f"{key} {_fmt_value(value)}" for key, value in fields.items())


def clock(seconds: float | None) -> str:
    """0:42, 12:05, 1:02:03; '-' when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class PlainProgress:
    """One line per report: `step 120/1000  loss 2.31  ...  elapsed 0:42  eta 1:03`."""

    def __init__(self, total: int, description: str):
        self.total, self.description = total, description
        self._start_time: float | None = None
        self._start_step = 0

    def start(self, initial: int) -> None:
        self._start_time, self._start_step = time.perf_counter(), initial
        log.info("%s: step %d/%d", self.description, initial, self.total)

    def timing(self, step: int) -> tuple[float | None, float | None]:
        """(seconds since start, estimated seconds to the last step)."""
        if self._start_time is None:
            return None, None
        elapsed = time.perf_counter() - self._start_time
        done = step - self._start_step
        eta = elapsed / done * (self.total - step) if done > 0 else None
        return elapsed, eta

    def advance(self, step: int) -> None:
        pass

    def report(self, step: int, fields: dict[str, Any]) -> None:
        elapsed, eta = self.timing(step)
        log.info("step %d/%d  %s  elapsed %s  eta %s", step, self.total, _fmt(fields), clock(elapsed), clock(eta))

    def message(self, text: str) -> None:
        log.info("%s", text)

    def finish(self, text: str) -> None:
        """The last message, after the display is taken down."""
        self.stop()
        self.message(text)

    def stop(self) -> None:
        pass


class _ConsoleStream:
    """A stream for logging handlers while the bar is live: each line is printed above the bar."""

    def __init__(self, console: Any):
        self.console = console

    def write(self, text: str) -> int:
        if text.strip():
            self.console.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


def is_terminal(stream: Any) -> bool:
    """Whether a handler's stream is a terminal; a closed stream (a handler left behind by an
    embedding program or a test) is not one."""
    try:
        return bool(getattr(stream, "isatty", lambda: False)())
    except (ValueError, OSError):
        return False


class BarProgress(PlainProgress):
    """A rich progress bar on stderr, the latest metrics on the line below it."""

    def __init__(self, total: int, description: str, console: Any = None):
        super().__init__(total, description)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.table import Column
        from rich.text import Text

        class TwoLines(Progress):
            def get_renderables(self):  # the bar, then each task's metrics on a line of their own
                yield self.make_tasks_table(self.tasks)
                for task in self.tasks:
                    yield Text("  " + task.fields.get("metrics", ""), overflow="ellipsis", no_wrap=True)

        self._progress = TwoLines(
            TextColumn("[bold]{task.description}", table_column=Column(max_width=32, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = None
        self._streams: list[tuple[logging.StreamHandler, Any]] = []
        self._live = False

    def start(self, initial: int) -> None:
        super().start(initial)
        self._progress.start()
        self._live = True
        self._task = self._progress.add_task(self.description, total=self.total, completed=initial,
                                             metrics="waiting for the first steps")
        self._progress.refresh()
        self._redirect_logging()

    def _redirect_logging(self) -> None:
        """Point the console handlers (Hydra's, the root logger's) at the bar's console."""
        stream = _ConsoleStream(self._progress.console)
        for logger in (logging.getLogger(), log):
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler and is_terminal(handler.stream):
                    self._streams.append((handler, handler.setStream(stream)))

    def _restore_logging(self) -> None:
        for handler, original in reversed(self._streams):
            handler.setStream(original)
        self._streams.clear()

    def advance(self, step: int) -> None:
        self._progress.update(self._task, completed=step)

    def report(self, step: int, fields: dict[str, Any]) -> None:
        self._progress.update(self._task, completed=step, metrics=_fmt(fields))

    def stop(self) -> None:
        if self._live:
            self._live = False
            self._progress.stop()
            self._restore_logging()


class NoProgress(PlainProgress):
    def start(self, initial: int) -> None:
        pass

    def report(self, step: int, fields: dict[str, Any]) -> None:
        pass


def make_progress(mode: str, total: int, description: str) -> PlainProgress:
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "plain"
    return {"bar": BarProgress, "plain": PlainProgress, "none": NoProgress}[mode](total, description)
