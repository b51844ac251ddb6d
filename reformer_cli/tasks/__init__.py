"""The tasks by name: each is a `TaskSpec` (spec.py) registered under its name, the built-in ones
here: the synthetic duplication task, enwik8 / byte-level text and imagenet64. A task of your own
is one module defining its spec (and its `Task`) that calls `register_task`, plus its config file
`conf/task/<name>.yaml`.

Importing this package loads no torch: the specs build their `Task` (base.py) when asked.
"""

from __future__ import annotations

from typing import Any

from ..primitives.task_registry import find_task, metric_directions, register_task, task_names, task_spec, task_specs
from .bytes_spec import ENWIK8, TEXT
from .imagenet64_spec import IMAGENET64
from .spec import PreparedTaskSpec, TaskSpec
from .synthetic_spec import SYNTHETIC

for _spec in (SYNTHETIC, ENWIK8, TEXT, IMAGENET64):
    register_task(_spec)


def build_task(cfg: Any, seed: int) -> Any:
    """The `Task` (base.py) of the task config `cfg` for a run of `seed`."""
    return task_spec(cfg.name).build(cfg, seed)


__all__ = ["metric_directions", "TaskSpec", "PreparedTaskSpec", "build_task", "register_task", "task_spec", "task_specs", "task_names",
           "find_task"]
