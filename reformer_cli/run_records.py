"""Reading run folders back: what `reformer runs` lists and `reformer compare` plots. Without torch.

A run folder holds config.yaml and metrics.jsonl or summary.json (records.py). `find_runs` walks
folders for them (a sweep folder's jobs too) and `read_run` reads one into a `Run`: its name,
task, attention label, status, steps, final and best metric, tokens, parameters, time, and its
curves. Everything is read tolerantly, since a run may be writing while it is read and another
version of the code may have written it: a missing summary is a run still going (its lock is
held), interrupted, or failed; a `best` that is absent or of another shape is computed from the
held-out records instead. A folder whose config or summary cannot be read raises
`MalformedRun` (one line naming it), which listers report and skip.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import run_folder
from .errors import UserError
from .naming import attention_label, model_attention_label
from .records import MetricsLog, list_checkpoints
from .tasks import find_task

HIGHER_IS_BETTER = ("accuracy",)
STATUSES = ("completed", "running", "interrupted", "diverged", "failed")
SKIPPED_DIRS = ("checkpoints", "wandb", "tensorboard")


class MalformedRun(Exception):
    """A run folder whose records cannot be read (the message names the folder and why)."""


def is_run_folder(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() and (
        (folder / "metrics.jsonl").is_file() or (folder / "summary.json").is_file())


def find_run_folders(roots: list[Path]) -> Iterator[Path]:
    """Every run folder under `roots` (a root may be a run folder itself), once each; the walk does
    not enter a run folder's own sub-folders nor hidden ones."""
    seen: set[str] = set()
    for root in roots:
        for here, dirs, _ in os.walk(root):
            folder = Path(here)
            if is_run_folder(folder):
                dirs[:] = []
                key = os.path.realpath(folder)
                if key not in seen:
                    seen.add(key)
                    yield folder
                continue
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)


def better(metric: str, a: float, b: float) -> bool:
    """Whether value `a` of `metric` is better than `b`."""
    return a > b if metric in HIGHER_IS_BETTER else a < b


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Run:
    folder: Path
    name: str
    task: str
    attention: str
    status: str
    metric: str
    steps: int | None
    max_steps: int | None
    final: float | None  # the final evaluation's valid metric
    best: float | None  # the best periodic valid metric
    tokens: int | None
    parameters: int | None
    seconds: float | None
    time: float  # when it last wrote (seconds since the epoch)
    config: dict
    records: list[dict] = field(default_factory=list, repr=False)

    def curve(self, split: str, key: str, x: str = "step") -> tuple[list[float], list[float]]:
        """(x, y) of `key` in the `split` records (x: step or tokens), finite values only. Held-out
        records carry no token count: theirs is the step times the tokens per step of training."""
        per_step = self.tokens_per_step()
        xs, ys = [], []
        for r in self.records:
            y = _number(r.get(key))
            if r.get("split") != split or y is None:
                continue
            if x == "tokens":
                tokens = _number(r.get("tokens"))
                if tokens is None and per_step is not None:
                    tokens = r["step"] * per_step
                if tokens is None:
                    continue
                xs.append(tokens)
            else:
                xs.append(float(r["step"]))
            ys.append(y)
        return xs, ys

    def tokens_per_step(self) -> float | None:
        for r in reversed(self.records):
            tokens = _number(r.get("tokens"))
            if r.get("split") == "train" and tokens and r["step"] > 0:
                return tokens / r["step"]
        if self.tokens and self.steps:
            return self.tokens / self.steps
        return None

    def as_json(self) -> dict:
        return {"name": self.name, "task": self.task, "attention": self.attention, "status": self.status,
                "metric": self.metric, "steps": self.steps, "max_steps": self.max_steps, "final": self.final,
                "best": self.best, "tokens": self.tokens, "parameters": self.parameters, "seconds": self.seconds,
                "time": self.time, "folder": str(self.folder)}


def _read_json(path: Path, folder: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MalformedRun(f"{folder}: {path.name} cannot be read ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise MalformedRun(f"{folder}: {path.name} is not a JSON object")
    return value


def _read_config(folder: Path) -> dict:
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise MalformedRun(f"{folder}: config.yaml cannot be read ({type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise MalformedRun(f"{folder}: config.yaml is not a mapping")
    return config


def _label(config: dict) -> str:
    """The run's attention label, as in its default name (with `model.attn_layers`, every layer's)."""
    attention = config.get("attention")
    if not isinstance(attention, dict) or "name" not in attention:
        return "?"
    model = config.get("model")
    try:
        if isinstance(model, dict) and model.get("attn_layers") is not None:
            return model_attention_label(OmegaConf.create({"model": model, "attention": attention}))
        return attention_label(attention)
    except (KeyError, TypeError, ValueError, UserError, OmegaConfBaseException):  # UserError: an unknown type
        return str(attention["name"])


def _best_of(summary: dict, metric: str, records: list[dict]) -> float | None:
    """The summary's best (`{metric: v, "step": n}`, or per split `{"valid": {metric: v}}`), else
    the best held-out record."""
    best = summary.get("best")
    if isinstance(best, dict):
        value = _number(best.get(metric))
        if value is None and isinstance(best.get("valid"), dict):
            value = _number(best["valid"].get(metric))
        if value is not None:
            return value
    values = [v for r in records if r.get("split") == "valid" and (v := _number(r.get(metric))) is not None]
    if not values:
        return None
    return max(values) if metric in HIGHER_IS_BETTER else min(values)


def _status(folder: Path, summary: dict | None) -> str:
    if run_folder.holder(folder) is not None:
        return "running"
    status = (summary or {}).get("status")
    if status in STATUSES:
        return status
    if summary is None and list_checkpoints(folder):  # killed (kill -9, power): resume=auto continues it
        return "interrupted"
    return "failed" if summary is None else str(status)


def task_metric(task: str) -> str:
    """The metric a task is judged by, when no summary says so (a run still going): its spec's."""
    spec = find_task(task)
    return spec.metric if spec is not None else "loss"


def read_run(folder: Path) -> Run:
    """The records of run folder `folder`; MalformedRun when its config or summary cannot be read."""
    folder = Path(folder)
    config = _read_config(folder)
    summary = _read_json(folder / "summary.json", folder)
    records = MetricsLog(folder / "metrics.jsonl").read() if (folder / "metrics.jsonl").is_file() else []
    task_cfg = config.get("task") if isinstance(config.get("task"), dict) else {}
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    task = str(task_cfg.get("name", "?"))
    metric = str((summary or {}).get("metric") or task_metric(task))
    final_valid = ((summary or {}).get("final") or {}).get("valid") if isinstance((summary or {}).get("final"), dict) else None
    steps = (summary or {}).get("steps")
    if not isinstance(steps, int):
        steps = max((r["step"] for r in records), default=None)
    tokens = (summary or {}).get("tokens")
    if not isinstance(tokens, int):
        tokens = next((int(t) for r in reversed(records) if (t := _number(r.get("tokens"))) is not None), None)
    seconds = _number((summary or {}).get("wall_seconds"))
    if seconds is None:
        seconds = next((t for r in reversed(records) if (t := _number(r.get("wall_s"))) is not None), None)
    written = [p.stat().st_mtime for p in (folder / "summary.json", folder / "metrics.jsonl") if p.is_file()]
    return Run(
        folder=folder,
        name=str((summary or {}).get("run_name") or config.get("run_name") or folder.name),
        task=task,
        attention=_label(config),
        status=_status(folder, summary),
        metric=metric,
        steps=steps,
        max_steps=trainer.get("max_steps") if isinstance(trainer.get("max_steps"), int) else None,
        final=_number(final_valid.get(metric)) if isinstance(final_valid, dict) else None,
        best=_best_of(summary or {}, metric, records),
        tokens=tokens,
        parameters=(summary or {}).get("n_parameters") if isinstance((summary or {}).get("n_parameters"), int) else None,
        seconds=seconds,
        time=max(written, default=(folder / "config.yaml").stat().st_mtime),
        config=config,
        records=records,
    )


def read_runs(roots: list[Path]) -> tuple[list[Run], list[str]]:
    """(the runs under `roots`, one line per folder skipped as malformed)."""
    runs, skipped = [], []
    for folder in find_run_folders(roots):
        try:
            runs.append(read_run(folder))
        except MalformedRun as exc:
            skipped.append(str(exc))
    return runs, skipped


def config_value(config: dict, key: str) -> Any:
    """The value of dotted `key` in a nested config (KeyError when absent)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node
