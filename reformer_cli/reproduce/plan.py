"""Planning a reproduction: what a step needs that this machine may lack. A training run's config
must compose (`compose_run`: a wrong override is one line here, before anything runs) and its
task's data must be there (`DataCheck`); a step that asks for CUDA needs a CUDA device; a benchmark
must exist in this build. Each check returns one line saying what is missing, or None."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from ..config import validate
from ..errors import DataError, one_line
from ..hydra_entry import compose


def compose_run(overrides: list[str]) -> Any:
    """The validated config `reformer run <overrides>` would train (UserError with one line if not)."""
    cfg = compose("config", list(overrides))
    validate(cfg)
    return cfg


class DataCheck:
    """`Task.check_data` of each task config, run once per distinct task."""

    def __init__(self) -> None:
        self._checked: dict[str, str | None] = {}

    def missing(self, cfg: Any) -> str | None:
        """One line naming the data a run config needs and does not find."""
        key = OmegaConf.to_yaml(cfg.task)
        if key not in self._checked:
            from ..tasks import build_task

            try:
                build_task(cfg.task, int(cfg.seed)).check_data()
                self._checked[key] = None
            except DataError as exc:
                self._checked[key] = one_line(str(exc))
        return self._checked[key]


def missing_benchmark(name: str) -> str | None:
    from ..bench import BENCHMARKS

    if name not in BENCHMARKS:
        return f"`reformer bench {name}` is not available in this build"
    return None


def wants_missing_cuda(args: list[str]) -> str | None:
    wants = any(a.split("=", 1)[-1].startswith("cuda") for a in args if a.split("=", 1)[0] in ("trainer.device", "device"))
    if not wants:
        return None
    import torch

    if torch.cuda.is_available():
        return None
    return "needs a CUDA device and this machine has none (this profile is sized for one H100)"
