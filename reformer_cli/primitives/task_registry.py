"""The tasks by name: every task registers its spec here (reformer_cli/tasks/spec.py says what a
spec holds), and whatever needs a task by name asks here, the config checks included.

It lives below the config schemas so that they can look a task up without importing the tasks
(which load torch to build batches); the tasks fill it when `reformer_cli.tasks` is imported.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

_SPECS: dict[str, Any] = {}  # name -> spec, in the order of registration


def register_task(spec: Any) -> Any:
    """Add `spec` (a TaskSpec) under `spec.name`; registering the same spec again does nothing,
    another spec under a taken name is refused. Returns the spec."""
    held = _SPECS.get(spec.name)
    if held is not None and held is not spec:
        raise ValueError(f"a task named '{spec.name}' is already registered ({type(held).__name__})")
    _SPECS[spec.name] = spec
    return spec


def task_names() -> list[str]:
    return list(_SPECS)


def task_specs() -> list[Any]:
    return list(_SPECS.values())


def find_task(name: Any) -> Any | None:
    """The spec registered as `name`, or None."""
    return _SPECS.get(str(name))


def task_spec(name: Any) -> Any:
    """The spec registered as `name`; ConfigError (one line) naming the known tasks otherwise."""
    spec = find_task(name)
    if spec is None:
        raise ConfigError(f"unknown task '{name}' (available: {', '.join(_SPECS)})")
    return spec


def metric_directions() -> dict[str, bool]:
    """Every metric the registered tasks report -> whether higher is better."""
    return {name: higher for spec in _SPECS.values() for name, higher in spec.metrics.items()}
