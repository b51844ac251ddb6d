"""Progress display: a rich bar on a terminal, plain periodic lines otherwise (logs, CI, SLURM).

rich shows only the final state of a live display when output is not a terminal
(notes/ecosystem.md f), so 'auto' picks the bar only when stderr is a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("reformer")


def _fmt(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key} {value}")
    return "  ".join(parts)


class PlainProgress:
    """One line per report: `step 120/1000  loss 2.31  ...`."""

    def __init__(self, total: int, description: str):
        self.total, self.description = total, description

    def start(self, initial: int) -> None:
        log.info("%s: step %d/%d", self.description, initial, self.total)

    def advance(self, step: int) -> None:
        pass

    def report(self, step: int, fields: dict[str, Any]) -> None:
        log.info("step %d/%d  %s", step, self.total, _fmt(fields))

    def message(self, text: str) -> None:
        log.info("%s", text)

    def stop(self) -> None:
        pass


class BarProgress(PlainProgress):
    """A rich progress bar on stderr with the latest metrics beside it."""

    def __init__(self, total: int, description: str):
        super().__init__(total, description)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = None

    def start(self, initial: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=self.total, completed=initial, metrics="")

    def advance(self, step: int) -> None:
        self._progress.update(self._task, completed=step)

    def report(self, step: int, fields: dict[str, Any]) -> None:
        self._progress.update(self._task, completed=step, metrics=_fmt(fields))

    def message(self, text: str) -> None:
        self._progress.console.print(text)

    def stop(self) -> None:
        self._progress.stop()


class NoProgress(PlainProgress):
    def start(self, initial: int) -> None:
        pass

    def report(self, step: int, fields: dict[str, Any]) -> None:
        pass


def make_progress(mode: str, total: int, description: str) -> PlainProgress:
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "plain"
    return {"bar": BarProgress, "plain": PlainProgress, "none": NoProgress}[mode](total, description)
