"""Curated run records: the small JSON files in `results/runs/<profile>/<experiment>/<step>.json`.

`reformer reproduce` writes one after each step from what the step left in its folder
(summary.json + metrics.jsonl of a training run, eval.json of an evaluation, the JSON of a
benchmark); `reformer table` reads nothing else. A record keeps what a table or plot needs and
what says where a number came from (config, metrics, the validation curve, device, date, code
version, the command), never checkpoints. Every record starts with the same header:

    schema, experiment, profile, step, kind (train | eval | bench), labels (run, task_key,
    evaluates, as_), command, definition (the step's arguments as experiments/ defines them:
    a record of the current definition means the step is done), device (a readable name), date,
    code_version

Paths under the working folder are stored relative to it, so records do not carry a machine's
folder layout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..records import MetricsLog, write_json_atomic

SCHEMA = 1

# summary.json keys kept in a training record (the rest: W&B id, etc.)
TRAIN_KEYS = (
    "status", "run_name", "date", "task", "metric", "final", "best", "steps", "tokens", "train_seconds",
    "wall_seconds", "tokens_per_second", "n_parameters", "precision", "peak_memory_bytes",
    "torch_version", "seed", "world_size", "config",
)
EVAL_DROP = ("code_version",)  # moved into the header


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc})") from None
    except RecursionError:  # json.loads recurses once per level of [ or {
        raise DataError(f"cannot read {path} (its JSON is nested too deeply)") from None


def relative_paths(value: Any, base: Path) -> Any:
    """Strings naming paths under `base` made relative to it (recursively)."""
    prefix = str(base.resolve()) + os.sep
    if isinstance(value, str):
        return value.replace(prefix, "")
    if isinstance(value, dict):
        return {k: relative_paths(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v, base) for v in value]
    return value


def _device(kind_device: str | None, name: str | None) -> str:
    """'NVIDIA H100 80GB HBM3 (cuda)', 'x86_64 (cpu)'."""
    if name and kind_device and name != kind_device:
        return f"{name} ({kind_device})"
    return name or kind_device or "unknown"


def train_payload(run_dir: Path) -> dict:
    """From a finished training run: its summary (config, final and best metrics, timing, device)
    and the validation curve from metrics.jsonl (every periodic evaluation: `valid`, or
    `valid_estimate` when it covers part of the split; never the final evaluation's line)."""
    summary = _read_json(run_dir / "summary.json")
    curve = [
        {k: v for k, v in line.items() if k != "split"}
        for line in MetricsLog(run_dir / "metrics.jsonl").read()
        if line.get("split") in ("valid", "valid_estimate") and line.get("final") is not True
    ]
    payload = {k: summary.get(k) for k in TRAIN_KEYS}
    payload["curve"] = curve
    header = {
        "device": _device(summary.get("device"), summary.get("device_name")),
        "date": summary.get("date"),
        "code_version": summary.get("code_version"),
    }
    return {**header, **payload}


def eval_payload(path: Path) -> dict:
    record = _read_json(path)
    header = {
        "device": _device(record.get("device"), record.get("device_name")),
        "date": record.get("date"),
        "code_version": record.get("code_version"),
    }
    return {**header, **{k: v for k, v in record.items() if k not in EVAL_DROP and k not in ("device", "device_name", "date")}}


def bench_payload(path: Path) -> dict:
    """A benchmark's own JSON, whole, under `result` (memory: info + results; speed: rows)."""
    result = _read_json(path)
    return {
        "device": str(result.get("device") or "unknown"),
        "date": result.get("date"),
        "code_version": result.get("code_version"),
        "result": result,
    }


def curate(step: Any, step_dir: Path, command: str, base: Path) -> dict:
    """The record of a finished step (`step`: an experiments.Step)."""
    if step.kind == "train":
        payload = train_payload(step_dir)
    elif step.kind == "eval":
        payload = eval_payload(step_dir / "eval.json")
    elif step.kind == "bench":
        payload = bench_payload(step_dir / "bench.json")
    else:
        raise ValueError(f"no record for a {step.kind} step")
    record = {
        "schema": SCHEMA,
        "experiment": step.experiment,
        "profile": step.profile,
        "step": step.name,
        "kind": step.kind,
        "labels": step.labels,
        "command": command,
        "definition": step.args,
        **payload,
    }
    return relative_paths(record, base)


def record_path(results: Path, step: Any) -> Path:
    return Path(results) / "runs" / step.profile / step.experiment / f"{step.name}.json"


def write_record(results: Path, step: Any, record: dict) -> Path:
    path = record_path(results, step)
    write_json_atomic(path, record)
    return path


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
