"""Non-finite training: detected at every optimizer step, never saved.

`FiniteWatch.observe` runs after each optimizer step and only queues device operations (no host
sync, so a GPU is never stalled per step): it keeps, on the device, the first step whose loss or
gradient norm was NaN or infinite. The trainer reads it (`first_bad_step`, one sync) where it
syncs anyway (log steps), at evaluation and checkpoint steps, and always before a checkpoint is
written; `all_finite` checks the weights and optimizer state themselves before that write too.
So a checkpoint never holds a non-finite value, and a diverged run stops with `Diverged`.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from .errors import UserError


class Diverged(UserError):
    """Training became non-finite: one line naming the step and the last finite checkpoint."""

    exit_code = 1


class FiniteWatch:
    def __init__(self, device: torch.device):
        self._first = torch.full((), -1, dtype=torch.long, device=device)

    def observe(self, step: int, loss_sum: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Record `step` if its loss or gradient norm is not finite (device ops only)."""
        ok = torch.isfinite(loss_sum.detach()) & torch.isfinite(grad_norm.detach().to(loss_sum.device))
        self._first = torch.where(~ok & (self._first < 0), step, self._first)

    def first_bad_step(self) -> int | None:
        """The first non-finite step so far, or None (one host sync)."""
        value = int(self._first.item())
        return None if value < 0 else value


def tensors_of(obj: Any) -> Iterable[torch.Tensor]:
    """Every tensor inside nested dicts / lists (a state dict, an optimizer state)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from tensors_of(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from tensors_of(value)


def all_finite(obj: Any) -> bool:
    """Whether every floating-point tensor in `obj` is finite (one host sync per device)."""
    checks: dict[torch.device, list[torch.Tensor]] = {}
    for t in tensors_of(obj):
        if t.is_floating_point() or t.is_complex():
            checks.setdefault(t.device, []).append(torch.isfinite(t).all())
    return all(bool(torch.stack(flags).all()) for flags in checks.values())
