"""What a run returns to a Hydra sweeper that optimises (`hparams_search=...`, the Optuna sweeper):
the final valid value of `optimized_metric` (summary.json's final.valid). A job that failed or
diverged returns NaN, which Optuna records as a failed trial while the search goes on (an
exception would stop the whole search). Checked before any training: the metric is one a run
reports, and the direction the sweeper is given is the metric's own (maximising a loss would
search for the worst settings). Part of the Hydra boundary; no torch.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import OmegaConf

from .errors import ConfigError

HIGHER_IS_BETTER = ("accuracy",)
LOWER_IS_BETTER = ("loss", "bits", "bpc", "bits_per_dim")


def sweeper_direction() -> Any:
    """The current Hydra job's sweeper direction (`maximize`, `minimize`, or a list), or None."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    direction = OmegaConf.select(HydraConfig.get(), "sweeper.direction", default=None)
    if direction is None or isinstance(direction, str):
        return direction
    return [str(d) for d in direction] if OmegaConf.is_list(direction) else str(direction)


def check_objective(metric: str | None, direction: Any) -> None:
    """ConfigError (one line) for a metric no run reports or a direction against the metric's."""
    if metric is None:
        return
    if metric not in HIGHER_IS_BETTER + LOWER_IS_BETTER:
        raise ConfigError(f"optimized_metric={metric!r} is not one of: {', '.join(HIGHER_IS_BETTER + LOWER_IS_BETTER)}")
    if isinstance(direction, list):
        raise ConfigError("optimized_metric names one metric: give the sweeper one direction")
    expected = "maximize" if metric in HIGHER_IS_BETTER else "minimize"
    if direction is not None and str(direction).split(".")[-1].lower() != expected:
        raise ConfigError(f"optimized_metric={metric} is optimised by hydra.sweeper.direction={expected}, not {direction}")


def objective(metric: str | None, result: Any) -> Any:
    """`result` (a training summary) as the sweeper's value: its final valid `metric`, NaN when it
    has none; `result` itself when no metric is optimised."""
    if metric is None:
        return result
    final = (result or {}).get("final") if isinstance(result, dict) else None
    valid = final.get("valid") if isinstance(final, dict) else None
    value = valid.get(metric) if isinstance(valid, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return math.nan
    return float(value)
