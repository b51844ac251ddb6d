"""Tasks: the synthetic duplication task, enwik8 / byte-level text, imagenet64."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import Batch, Task

# task name -> "module:Class"; each class takes (task config, run seed)
TASKS = {
    "synthetic": "reformer_cli.tasks.synthetic:SyntheticTask",
    "enwik8": "reformer_cli.tasks.bytes:Enwik8Task",
    "text": "reformer_cli.tasks.bytes:TextTask",
    "imagenet64": "reformer_cli.tasks.imagenet64:ImageNet64Task",
}


def build_task(cfg: Any, seed: int) -> Task:
    if cfg.name not in TASKS:
        raise ConfigError(f"unknown task '{cfg.name}' (available: {', '.join(TASKS)})")
    module, cls = TASKS[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg, seed)


__all__ = ["Batch", "Task", "build_task", "TASKS"]
