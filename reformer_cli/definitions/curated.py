"""Curated run records, the reading side: the small JSON files in
`results/runs/<profile>/<experiment>/<step>.json` that `reformer reproduce` writes after each step
(reformer_cli/reproduce/curate.py) and `reformer table` reads. Here: where a step's record lives,
reading a folder of them (a damaged one skipped with one line), and the one rule of when an
evaluation's record is stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..errors import DataError

SCHEMA = 1


def record_path(results: Path, step: Any) -> Path:
    """Where the record of `step` (an experiments.Step) lives under the results folder."""
    return Path(results) / "runs" / step.profile / step.experiment / f"{step.name}.json"


def evaluated_before_training(evaluation: dict, training: dict) -> bool:
    """An evaluation's record dated before the record of the training run it evaluates: it measured
    an earlier model of that run (trained again since), so it is stale. Dates are ISO strings and
    compare as text; an evaluation without a date predates every training run, and a training run
    without a date postdates every evaluation (nothing says the evaluation saw it)."""
    return str(evaluation.get("date") or "") < str(training.get("date") or "~")


def _kind_of(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def _not_numbers(value: Any, where: str) -> str | None:
    """Where `value` (an object or list of metrics, nested) holds something other than a number,
    a boolean or null: 'metrics.accuracy is a string'; None if nowhere."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    elif value is None or isinstance(value, (int, float)):
        return None
    else:
        return f"{where} is {_kind_of(value)}, not a number"
    for key, item in items:
        if key == "split" and isinstance(item, str):  # a curve point's split
            continue
        problem = _not_numbers(item, f"{where}.{key}")
        if problem:
            return problem
    return None


def record_problem(record: Any) -> str | None:
    """Why a parsed record cannot be shown (not an object, a field of the wrong type, a string
    where a metric number belongs); None if it can."""
    if not isinstance(record, dict):
        return f"it is {_kind_of(record)}, not a JSON object"
    for key in ("labels", "code_version", "metrics", "final", "best", "result"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            return f"its {key} is {_kind_of(record[key])}, not an object"
    for key in ("curve", "definition"):
        if record.get(key) is not None and not isinstance(record[key], list):
            return f"its {key} is {_kind_of(record[key])}, not a list"
    for key in ("metrics", "final", "best", "curve", "steps", "n_parameters", "train_seconds"):
        problem = _not_numbers(record.get(key), key)
        if problem:
            return f"its {problem}"
    result = record.get("result") or {}
    for key in ("rows", "results"):
        rows = result.get(key)
        if rows is not None and not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
            return f"its result.{key} is not a list of objects"
    return None


def read_records(runs: Path, profile: str, experiment: str) -> dict[str, dict]:
    """{step name: record} of one experiment and profile ({} if none). A record that cannot be
    read or shown (not JSON, not an object, nested too deeply, a string where a number belongs)
    is skipped with one line on stderr, `skipped <path>: <why>`."""
    folder = Path(runs) / profile / experiment
    if not folder.is_dir():
        return {}
    records = {}
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            problem = record_problem(record)
        except RecursionError:  # json.loads recurses once per level of [ or {
            problem = "its JSON is nested too deeply"
        except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
            problem = f"it is not readable JSON ({type(exc).__name__}: {exc})"
        if problem:
            sys.stderr.write(f"skipped {path}: {problem}\n")
            continue
        if record.get("schema") != SCHEMA:
            raise DataError(f"{path} is not a curated run record (schema {record.get('schema')!r}, expected {SCHEMA})")
        records[path.stem] = record
    return records
