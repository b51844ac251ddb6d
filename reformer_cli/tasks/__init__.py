"""The tasks by name: `build_task` makes the synthetic duplication task, enwik8 / byte-level text or
imagenet64 from its config."""

from __future__ import annotations

from ..config import Enwik8TaskConfig, ImageNet64TaskConfig, SyntheticTaskConfig, TextTaskConfig
from ..errors import ConfigError
from .base import Batch, Task
from .bytes import Enwik8Task, TextTask
from .imagenet64 import ImageNet64Task
from .synthetic import SyntheticTask

TaskConfig = SyntheticTaskConfig | Enwik8TaskConfig | TextTaskConfig | ImageNet64TaskConfig

# task name -> its class; each takes (task config, run seed)
TASKS: dict[str, type[Task]] = {
    "synthetic": SyntheticTask,
    "enwik8": Enwik8Task,
    "text": TextTask,
    "imagenet64": ImageNet64Task,
}


def build_task(cfg: TaskConfig, seed: int) -> Task:
    if cfg.name not in TASKS:
        raise ConfigError(f"unknown task '{cfg.name}' (available: {', '.join(TASKS)})")
    return TASKS[cfg.name](cfg, seed)


__all__ = ["Batch", "Task", "build_task", "TASKS"]
