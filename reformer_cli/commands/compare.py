"""`reformer compare RUN... [--out DIR] [--x step|tokens] [--metric M] [--force]`: compare.png (the
runs' held-out curves and training loss) and compare.md (final and best metric, steps, tokens,
parameters, time) from run folders or sweep folders, offline. The work is comparison.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import OneLineParser, UserError, report_and_exit
from ..text import shown_path
from . import matplotlib_or_note


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="reformer compare",
        description="Plot several runs' held-out curves and training loss (compare.png) and tabulate their final and"
        " best metric, steps, tokens, parameters and time (compare.md), from their run folders: no W&B needed. A"
        " sweep folder (or any folder) stands for every run under it.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="a run folder or a sweep folder")
    p.add_argument("--out", type=Path, default=Path("."), help="where compare.png and compare.md go (default: here)")
    p.add_argument("--x", choices=("step", "tokens"), default="step", help="align the curves by step (default) or tokens")
    p.add_argument("--metric", default=None, help="the held-out metric to plot (default: the task's, e.g. accuracy)")
    p.add_argument("--force", action="store_true", help="replace compare.png and compare.md if they exist")
    p.add_argument("--no-plot", action="store_true", help="compare.md only")
    return p


def main(args: list[str]) -> int:
    opts = parser().parse_args(args)
    from ..comparison import collect, write

    plots = not opts.no_plot and matplotlib_or_note("compare.png")
    try:
        runs, skipped = collect(opts.runs)
        for line in skipped:
            sys.stderr.write(f"skipped {line}\n")
        written = write(runs, opts.out, opts.metric, opts.x, opts.force, shown_path, plots)
    except UserError as exc:
        report_and_exit(str(exc))
    sys.stdout.write(f"{len(runs)} run(s) compared: {', '.join(shown_path(p) for p in written)}\n")
    return 0
