"""Small text helpers the commands share: a duration as a clock, a path as the user sees it, a
markdown table. No reformer_cli imports: the bottom layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable


def clock(seconds: float | None) -> str:
    """A duration, rounded to the second: 0:42, 12:05, 1:02:03; '-' when unknown (None)."""
    if seconds is None:
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def shown_path(path: str | Path) -> str:
    """A path relative to the working folder when inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def escape_bars(text: Any) -> str:
    """A table cell: every `|` in the text is text, not the end of the cell."""
    return str(text).replace("|", "\\|")


def markdown_table(header: Iterable[Any], rows: Iterable[Iterable[Any]], cell: Callable[[Any], str] = str) -> list[str]:
    """A markdown table's lines: the header, its rule, a line per row; `cell` writes each cell."""
    header = list(header)
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
