"""Curated run records, the writing side: the small JSON files in
`results/runs/<profile>/<experiment>/<step>.json`.

`reformer reproduce` writes one after each step from what the step left in its folder
(summary.json + metrics.jsonl of a training run, eval.json of an evaluation, the JSON of a
benchmark); `reformer table` reads nothing else (through reformer_cli/definitions/curated.py). A
record keeps what a table or plot needs and what says where a number came from (config, metrics,
the validation curve, device, date, code version, the command), never checkpoints. Every
record starts with the same header:

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
from pathlib import Path
from typing import Any

from ..definitions.curated import SCHEMA, record_path
from ..errors import DataError
from ..records import MetricsLog, write_json_atomic

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


def curate(step: Any, payload: dict, command: str, base: Path) -> dict:
    """The record of a finished step (`step`: an experiments.Step): the header, then the payload its
    kind took from its folder (train_payload, eval_payload or bench_payload)."""
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


def write_record(results: Path, step: Any, record: dict) -> Path:
    path = record_path(results, step)
    write_json_atomic(path, record)
    return path
