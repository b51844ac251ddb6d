"""The best periodic evaluation of a run and early stopping on it.

`best` is decided over the periodic evaluations only (one kind of number: `valid_estimate`, or
`valid` when they cover the whole split; eval_plan.py), in the task's metric direction. Early
stopping (`trainer.early_stop.patience` evaluations in a row that do not beat the best so far by
more than `min_delta`) guards against spending a budget on a run that stopped learning; it is off
while patience is 0.
"""

from __future__ import annotations

import math


def improves(higher_is_better: bool, value: float | None, best: float | None, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than `min_delta` in the metric's direction (the task's
    spec gives it: TaskSpec.higher_is_better). A missing or non-finite value never improves; any
    finite value improves on no best at all."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if higher_is_better else value < best - min_delta


def stop_reason(metric: str, split: str, patience: int, min_delta: float, best: dict) -> str:
    """The done line's words for an early stop."""
    shown = split.replace("_", " ")
    by = f" by more than {min_delta:g}" if min_delta else ""
    return (f"stopped early: {shown} {metric} did not improve{by} in {patience} evaluation(s) in a row"
            f" (best {best.get(metric, float('nan')):.4g} at step {best.get('step')})")
