"""Experiment loggers: Weights & Biases (offline unless logged in), TensorBoard, a CSV file, any
of them together (`logger=[wandb,tensorboard]`: a `CompositeLogger`), or none.

The run folder's metrics.jsonl is the source of truth; W&B gets the same curves. One W&B run per
Hydra job, always finished (also on errors and interruptions), so a multirun sweep never leaks a
run into the next job. A run is named, grouped and tagged by its `RunIdentity` (a sweep job: by
the overrides it sweeps, grouped by the sweep; reformer_cli/sweeps.py); `logger.group` and
`logger.tags` add to that. The validation metrics are declared with their direction, so W&B's run
summary holds the best value (`valid/accuracy.max`, `valid/loss.min`) besides the last, and so
are the periodic estimates (`valid_estimate/...`, eval_plan.py). `summarize` writes the run's final
numbers into the summary (`final/valid/accuracy`), the same numbers as summary.json's `final`.

W&B never stops or stalls a run for long: a project name W&B refuses and a `WANDB_MODE` it does
not know are one line before training (`config.wandb_problem`, from config validation); an online start
that fails (no API key, a key the server refuses, no network) waits at most `logger.init_timeout`
seconds, then the run logs offline with one warning line, so nothing is lost (`wandb sync` uploads
it later).
"""

from __future__ import annotations

import logging
import netrc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError, one_line
from .file_loggers import CsvLogger, TensorboardLogger
from .primitives.task_registry import metric_directions  # the tasks fill it before a run logs

log = logging.getLogger("reformer")


@dataclass(frozen=True)
class RunIdentity:
    """How a run is named in the console, its records and W&B."""

    name: str | None = None  # None: the default (naming.default_run_name)
    group: str | None = None  # the W&B group: the sweep, for a sweep's jobs
    tags: list[str] = field(default_factory=list)


class NullLogger:
    run_id: str | None = None

    def log(self, metrics: dict[str, Any], step: int) -> None:
        pass

    def summarize(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


def wandb_logged_in() -> bool:
    """True when an API key is configured (environment or ~/.netrc), without any network call."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(configured: str) -> str:
    """WANDB_MODE wins; 'auto' means online when logged in, offline otherwise."""
    env = os.environ.get("WANDB_MODE")
    if env:
        return env
    if configured == "auto":
        return "online" if wandb_logged_in() else "offline"
    return configured


OFFLINE_MODES = ("offline", "dryrun", "disabled")


class WandbLogger:
    def __init__(self, cfg: Any, run_dir: Path, config: dict, run_name: str, resume_id: str | None,
                 identity: RunIdentity | None = None):
        import wandb

        identity = identity or RunIdentity()
        mode = wandb_mode(cfg.mode)
        timeout = float(cfg.get("init_timeout", 30))
        arguments = dict(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group or identity.group,
            tags=list(dict.fromkeys([*cfg.tags, *identity.tags])),
            name=run_name,
            config=config,
            dir=str(run_dir),
            id=resume_id,
            resume="allow" if resume_id else None,
            reinit="finish_previous",
        )
        try:
            self._run = wandb.init(**arguments, mode=mode, settings=wandb.Settings(
                console="off", silent=True, init_timeout=timeout))
        except Exception as exc:
            reason = one_line(str(exc).split("\n")[0])[:200] or type(exc).__name__
            if mode in OFFLINE_MODES:
                raise UserError(f"W&B cannot start a {mode} run in {run_dir}: {reason}; log without it with"
                                " logger=none") from None
            mode = "offline"
            log.warning("W&B could not start online within logger.init_timeout=%g s (%s): logging offline"
                        " instead (WANDB_MODE=offline or logger=none skip the attempt)", timeout, reason)
            try:
                self._run = wandb.init(**arguments, mode=mode, settings=wandb.Settings(console="off", silent=True))
            except Exception as again:
                raise UserError(f"W&B cannot start an offline run in {run_dir} either:"
                                f" {one_line(str(again))[:200]}; log without it with logger=none") from None
        self.run_id = self._run.id
        # every metric a task logs under valid/, with its direction (the task specs'): W&B keeps the
        # best of each in the summary
        for split in ("valid", "valid_estimate"):
            for name, higher in metric_directions().items():
                self._run.define_metric(f"{split}/{name}", summary="max,last" if higher else "min,last")
        if mode == "offline":
            log.info("W&B offline run in %s (upload with: wandb sync %s)", self._run.dir, Path(self._run.dir).parent)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self._run.log(metrics, step=step)

    def summarize(self, values: dict[str, Any]) -> None:
        self._run.summary.update(values)

    def finish(self, exit_code: int = 0) -> None:
        self._run.finish(exit_code=exit_code)


class CompositeLogger:
    """Several loggers as one: each value goes to all; all are finished, even when one fails to."""

    def __init__(self, loggers: list[Any]):
        self.loggers = loggers
        self.run_id = next((lg.run_id for lg in loggers if lg.run_id), None)  # W&B's, for resuming it

    def log(self, metrics: dict[str, Any], step: int) -> None:
        for logger in self.loggers:
            logger.log(metrics, step)

    def summarize(self, values: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.summarize(values)

    def finish(self, exit_code: int = 0) -> None:
        errors = []
        for logger in self.loggers:
            try:
                logger.finish(exit_code)
            except Exception as exc:  # the others still finish
                errors.append(exc)
        if errors:
            raise errors[0]


def build_logger(cfg: Any, run_dir: Path, config: dict, run_name: str, resume_id: str | None,
                 identity: RunIdentity | None = None):
    """The loggers `cfg` (the `logger` node) switches on: one, a CompositeLogger of several, or a
    NullLogger. A logger that cannot start (a missing package) stops the ones started before it."""
    makers = []
    if cfg.get("wandb", cfg.get("name") == "wandb"):
        makers.append(lambda: WandbLogger(cfg, run_dir, config, run_name, resume_id, identity))
    if cfg.get("tensorboard", False):
        makers.append(lambda: TensorboardLogger(run_dir))
    if cfg.get("csv", False):
        makers.append(lambda: CsvLogger(run_dir))
    loggers: list[Any] = []
    try:
        for make in makers:
            loggers.append(make())
    except BaseException:
        CompositeLogger(loggers).finish(1)
        raise
    if not loggers:
        return NullLogger()
    return loggers[0] if len(loggers) == 1 else CompositeLogger(loggers)
