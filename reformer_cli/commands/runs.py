"""`reformer runs [FOLDER ...]`: list the runs under FOLDER (default outputs/), one line each, sorted
and filtered; `--json` for scripts. Reads run_records.py; never imports torch. A folder whose
records cannot be read is named on stderr and skipped."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from ..errors import OneLineParser, UserError, report_and_exit
from ..text import shown_path

SORTS = ("time", "metric", "name")


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="reformer runs",
        description="List the runs under the folders (default outputs/; sweep folders and reproductions too): name,"
        " task, attention, status (completed, running, interrupted, diverged, failed), steps done/max, final and best"
        " held-out metric, folder.",
    )
    p.add_argument("folders", nargs="*", type=Path, help="where to look (default outputs/)")
    p.add_argument("--sort", choices=SORTS, default="time",
                   help="time: newest first (default); metric: best final metric first; name")
    p.add_argument("--task", help="only runs of this task")
    p.add_argument("--status", help="only runs of this status (comma-separated: completed,running)")
    p.add_argument("--attention", help="only runs of this attention label (lsh-4, full, ...) or name (lsh, full)")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose config has KEY=VALUE (dotted, e.g. trainer.lr=0.001); repeatable")
    p.add_argument("--json", action="store_true", help="one JSON list of the runs instead of the table")
    return p


def parse_where(items: list[str]) -> list[tuple[str, Any]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--where {item!r}: expected KEY=VALUE (e.g. --where trainer.lr=0.001)")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        pairs.append((key.strip(), parsed))
    return pairs


def matches_where(config: dict, key: str, value: Any) -> bool:
    from ..run_records import config_value

    try:
        actual = config_value(config, key)
    except KeyError:
        return False
    return actual == value or str(actual) == str(value)


def select(runs: list, opts: argparse.Namespace) -> list:
    statuses = {s.strip() for s in opts.status.split(",")} if opts.status else None
    from ..run_records import STATUSES

    unknown = sorted((statuses or set()) - set(STATUSES))
    if unknown:
        raise UserError(f"--status {unknown[0]!r}: not a status (choose from {', '.join(STATUSES)})")
    where = parse_where(opts.where)
    chosen = []
    for run in runs:
        attention_name = (run.config.get("attention") or {}).get("name") if isinstance(run.config.get("attention"), dict) else None
        if opts.task and run.task != opts.task:
            continue
        if statuses and run.status not in statuses:
            continue
        if opts.attention and opts.attention not in (run.attention, attention_name):
            continue
        if not all(matches_where(run.config, key, value) for key, value in where):
            continue
        chosen.append(run)
    return chosen


def ordered(runs: list, sort: str) -> list:
    from ..run_records import HIGHER_IS_BETTER

    if sort == "name":
        return sorted(runs, key=lambda r: (r.name, -r.time))
    if sort == "metric":
        def key(run: Any) -> tuple:
            value = run.final if run.final is not None else run.best
            if value is None:
                return (1, 0.0, run.name)
            return (0, -value if run.metric in HIGHER_IS_BETTER else value, run.name)
        return sorted(runs, key=key)
    return sorted(runs, key=lambda r: -r.time)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def table(runs: list) -> list[str]:
    from ..sweeps import plain

    header = ["name", "task", "attention", "status", "steps", "metric", "final", "best", "folder"]
    rows = [[r.name, r.task, r.attention, r.status, f"{_num(r.steps)}/{_num(r.max_steps)}", r.metric,
             _num(r.final), _num(r.best), shown_path(r.folder)] for r in runs]
    return plain(header, rows)


def main(args: list[str]) -> int:
    opts = parser().parse_args(args)
    from ..run_records import read_runs

    try:
        folders = opts.folders or [Path("outputs")]
        missing = [str(f) for f in folders if not f.is_dir()]
        if missing:
            hint = " (runs are written under outputs/ of the folder `reformer run` ran in)" if not opts.folders else ""
            raise UserError(f"no such folder: {', '.join(missing)}{hint}")
        runs, skipped = read_runs(folders)
        for line in skipped:
            sys.stderr.write(f"skipped {line}\n")
        runs = ordered(select(runs, opts), opts.sort)
    except UserError as exc:
        report_and_exit(str(exc))
    if opts.json:
        sys.stdout.write(json.dumps([r.as_json() for r in runs], indent=2) + "\n")
    elif runs:
        sys.stdout.write("\n".join(table(runs)) + "\n")
    else:
        sys.stderr.write("no runs found\n")
    return 0
