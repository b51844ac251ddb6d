"""Device names as the user writes them (`trainer.device=`, `device=`, `--device`): which strings
are devices, and how a wrong one is said. Free of torch, so that the config can check a name before
torch is imported; runtime.select_device turns a name into a torch device."""

from __future__ import annotations

import re

DEVICE_NAMES = "auto, cpu, cuda, cuda:N, mps"


def is_device_name(name: str) -> bool:
    """auto, cpu, cuda, mps or cuda:N (N a non-negative integer)."""
    return name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:[0-9]+", name) is not None


def as_given(option: str, value: str) -> str:
    """How the user wrote the setting: `trainer.device='x'` for a config key, `--device 'x'` for a
    command-line flag."""
    return f"{option} {value!r}" if option.startswith("-") else f"{option}={value!r}"


def not_a_device(option: str, name: str) -> str:
    """The one-line message for a name that is not a device."""
    return f"{as_given(option, name)} is not one of: {DEVICE_NAMES}"
