"""Where datasets live by default, and the `reformer data prepare ...` line that fills a folder.

The root is `$REFORMER_DATA_DIR` when set, else `${XDG_CACHE_HOME:-~/.cache}/reformer`; each task
has its own sub-folder (docs/data.md, "Where data lives"). `task.data_dir` overrides it per run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..primitives.task_registry import task_spec


def data_root() -> Path:
    env = os.environ.get("REFORMER_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "reformer"


def as_path(value: Any) -> Path:
    """A user-given path: `~` expanded, relative paths taken from the current folder."""
    return Path(str(value)).expanduser().absolute()


def text_default_dir(path: Any) -> Path:
    """The prepared folder of a local corpus: one per absolute path of the file."""
    source = as_path(path)
    tag = hashlib.sha256(str(source).encode()).hexdigest()[:8]
    return data_root() / "text" / f"{source.stem}-{tag}"


def task_data_dir(task: Any) -> Path:
    """The folder `task.data_dir` names, or the task's default (its spec's `default_data_dir`)."""
    if task.get("data_dir"):
        return as_path(task.data_dir)
    return task_spec(task.name).default_data_dir(task)


def prepared_dir(task: Any) -> Path:
    """Where the prepared split files and manifest.json are (the task's spec says: the data
    folder, or apart from the downloaded files)."""
    return task_spec(task.name).prepared_dir(task)


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return "[" + ",".join(str(v) for v in value) + "]"
    text = str(value)
    return f"'{text}'" if any(c in text for c in " ,[]{}=") else text


def prepare_command(task: Any, *flags: str) -> str:
    """The exact `reformer data prepare ...` for this task config (non-default keys only)."""
    defaults = task_spec(task.name).schema()
    parts = ["reformer data prepare", f"task={task.name}"]
    for key in ("variant", "path", "data_dir", "prepared_dir", "split_sizes", "split_fractions"):
        if key not in task or task[key] is None:
            continue
        value = task[key]
        default = getattr(defaults, key, None)
        if key != "variant" and key != "path" and list_or_value(value) == list_or_value(default):
            continue
        parts.append(f"task.{key}={_value(value)}")
    parts.extend(flags)
    return " ".join(parts)


def list_or_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [v for v in value]
    return value
