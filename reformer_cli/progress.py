"""Progress display: a rich bar on a terminal, plain periodic lines otherwise (logs, CI, SLURM).

rich shows only the final state of a live display when output is not a terminal
(docs/runner.md, "Progress display"), so 'auto' picks the bar only when stderr is a terminal.

A plain line carries everything a log reader needs: `step 120/300  loss 4.85  accuracy 0.0081
tokens/s 12,345  elapsed 0:42  eta 1:03` (elapsed: since this process started training; eta: the
remaining steps at the rate so far, periodic evaluations included, plus the final evaluation's
estimated time once `set_tail` gives it). A long evaluation shows its own count (`evaluation`):
plain mode logs `final evaluation on valid: 12/64 batches  elapsed 0:05  eta 0:21` when it starts,
every EVAL_LINE_SECONDS and when it ends; the bar shows a second bar. The bar shows the same from step 0;
while it is on screen, log messages (a stop request, a W&B note, validation lines) are printed
above it, never onto its line, and `finish` takes the bar down before the last message.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from .text import clock as _clock

log = logging.getLogger("reformer")

EVAL_LINE_SECONDS = 5.0  # plain mode: seconds between an evaluation's progress lines


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)


def _fmt(fields: dict[str, Any]) -> str:
    return "  ".join(f"{key} {_fmt_value(value)}" for key, value in fields.items())


def clock(seconds: float | None) -> str:
    """0:42, 12:05, 1:02:03; '-' when unknown; never below 0:00 (an estimate can undershoot)."""
    return _clock(None if seconds is None else max(0.0, seconds))


class PlainProgress:
    """One line per report: `step 120/1000  loss 2.31  ...  elapsed 0:42  eta 1:03`."""

    def __init__(self, total: int, description: str):
        self.total, self.description = total, description
        self._start_time: float | None = None
        self._start_step = 0
        self._tail: float | None = None

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
        if eta is not None and self._tail:
            eta += self._tail
        return elapsed, eta

    def set_tail(self, seconds: float | None) -> None:
        """The estimated seconds of work after the last step (the final evaluation), added to the eta."""
        self._tail = seconds

    def evaluation(self, label: str, total: int | None) -> "PlainCount":
        """The progress of one evaluation of `total` batches (None: unknown)."""
        return PlainCount(label, total)

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


class PlainCount:
    """Batches of an evaluation done, as log lines: at the start, every EVAL_LINE_SECONDS, at the end."""

    def __init__(self, label: str, total: int | None):
        self.label, self.total = label, total
        self._start = self._last = time.perf_counter()
        self.done = 0
        self._line()

    def _line(self) -> None:
        elapsed = time.perf_counter() - self._start
        eta = elapsed / self.done * (self.total - self.done) if self.done and self.total else None
        log.info("%s: %d/%s batches  elapsed %s  eta %s", self.label, self.done,
                 "?" if self.total is None else self.total, clock(elapsed), clock(eta))

    def advance(self, done: int) -> None:
        self.done = done
        if time.perf_counter() - self._last >= EVAL_LINE_SECONDS:
            self._last = time.perf_counter()
            self._line()

    def finish(self) -> None:
        self._line()


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
                    if task.fields.get("metrics"):
                        yield Text("  " + task.fields["metrics"], overflow="ellipsis", no_wrap=True)

        class RemainingWithTail(TimeRemainingColumn):
            def render(self, task):  # rich's estimate plus the work after the last step (set_tail)
                remaining = task.time_remaining
                if remaining is None or not task.fields.get("tail"):
                    return super().render(task)
                return Text(clock(remaining + task.fields["tail"]), style="progress.remaining")

        self._progress = TwoLines(
            TextColumn("[bold]{task.description}", table_column=Column(max_width=32, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            RemainingWithTail(),
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

    def set_tail(self, seconds: float | None) -> None:
        super().set_tail(seconds)
        if self._task is not None:
            self._progress.update(self._task, tail=seconds)

    def evaluation(self, label: str, total: int | None) -> "BarCount":
        if not self._live:
            return super().evaluation(label, total)
        return BarCount(self._progress, label, total)

    def report(self, step: int, fields: dict[str, Any]) -> None:
        self._progress.update(self._task, completed=step, metrics=_fmt(fields))

    def stop(self) -> None:
        if self._live:
            self._live = False
            self._progress.stop()
            self._restore_logging()


class BarCount:
    """An evaluation's batches as a second bar under the training bar, removed when it ends."""

    def __init__(self, progress: Any, label: str, total: int | None):
        self._progress = progress
        self._task = progress.add_task(label, total=total, metrics="")

    def advance(self, done: int) -> None:
        self._progress.update(self._task, completed=done)

    def finish(self) -> None:
        self._progress.remove_task(self._task)


class SilentCount:
    def advance(self, done: int) -> None:
        pass

    def finish(self) -> None:
        pass


class NoProgress(PlainProgress):
    def start(self, initial: int) -> None:
        pass

    def report(self, step: int, fields: dict[str, Any]) -> None:
        pass

    def evaluation(self, label: str, total: int | None) -> SilentCount:
        return SilentCount()


def make_progress(mode: str, total: int, description: str) -> PlainProgress:
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "plain"
    return {"bar": BarProgress, "plain": PlainProgress, "none": NoProgress}[mode](total, description)
