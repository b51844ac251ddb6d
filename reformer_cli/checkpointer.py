"""A run's checkpoints: what one holds, writing it, keeping the last ones and the best, and
continuing from one.

A checkpoint (checkpoints/step-N.pt) holds the weights, the optimizer state, the run's counters
(`TrainState`), the partial log window (so a resumed run writes the same metrics lines) and the
config, under `format` (records.CHECKPOINT_FORMAT; a checkpoint of another format is skipped as
unusable). It is written atomically (records.atomic_write_bytes): the file is the whole new
checkpoint or absent, and a Ctrl-C during the write abandons it, leaving the previous one. Only
the last `trainer.keep_last` are kept; with `trainer.keep_best`, checkpoints/best.pt holds the best
periodic evaluation's and is never pruned. Nothing non-finite is ever written (`Diverged` instead,
naming the last finite checkpoint). Continuing takes the newest intact, finite checkpoint
(resume.load_usable_checkpoint); the newer unusable ones are renamed `.unusable` so they are never
chosen again.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from . import run_folder
from .errors import UserError
from .finite import Diverged, all_finite
from .optimization import apply_settings
from .records import (
    CHECKPOINT_DIR,
    CHECKPOINT_FORMAT,
    atomic_write_bytes,
    checkpoint_path,
    checkpoint_step,
    list_checkpoints,
)
from .resume import checkpoint_candidates, checkpoint_limit, load_usable_checkpoint

log = logging.getLogger("reformer")

BEST = "best.pt"


@dataclass
class TrainState:
    """The run's counters, saved in every checkpoint (`state`)."""

    step: int = 0
    tokens: int = 0
    train_seconds: float = 0.0  # time spent in training steps (evaluation excluded)
    wall_seconds: float = 0.0  # everything, across resumptions
    best: dict = field(default_factory=dict)
    evals_since_best: int = 0  # periodic evaluations since the last improvement by early_stop.min_delta
    wandb_run_id: str | None = None

    @classmethod
    def from_saved(cls, saved: dict) -> TrainState:
        names = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in names})
        state.evals_since_best = int(state.evals_since_best)
        return state


def checkpoint_contents(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState,
                        window: list[float], config: dict) -> dict:
    """What a checkpoint holds: weights, optimizer state, the training state, the log window's sums
    and the run's resolved config (`reformer import hf` writes its step-0 checkpoint with it too)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": asdict(state),
        "window": {"sums": list(window)},
        "config": config,
    }


def write_checkpoint(path: Path, contents: dict) -> Path:
    """`contents` to `path` atomically (the whole new file or the old one; see the module docstring)."""
    atomic_write_bytes(path, lambda f: torch.save(contents, f))
    return path


def save_checkpoint(run_dir: Path, step: int, contents: dict, keep_last: int) -> Path:
    """`contents` as step-N.pt, then all but the newest `keep_last` step checkpoints deleted."""
    path = write_checkpoint(checkpoint_path(run_dir, step), contents)
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def save_named_checkpoint(run_dir: Path, name: str, contents: dict) -> Path:
    """`contents` as checkpoints/<name> (best.pt). Not a `step-N.pt` name, so it is never pruned and
    never taken for the newest checkpoint (resumption, `reformer eval <run folder>`)."""
    return write_checkpoint(Path(run_dir) / CHECKPOINT_DIR / name, contents)


def check_no_records(run_dir: Path) -> None:
    """UserError (one line) when a new run (resume=null) would start in a folder holding another
    run's records but no checkpoint: it would overwrite them, maybe with another config."""
    found = [name for name in run_folder.RUN_RECORDS if (Path(run_dir) / name).exists()]
    if found:
        raise UserError(
            f"run folder {run_dir} already holds a run's records ({', '.join(found)}): pass resume=auto to"
            " continue it, or choose a new folder"
        )


def resume_candidates(resume: str | None, run_dir: Path, owner: bool = True) -> list[Path]:
    """The checkpoints to continue from, newest first, per `resume` (null / auto / path). Only the
    folder's owner (rank 0) refuses a folder that already holds a run: under torchrun the other
    ranks look at it after rank 0 has started writing its records there."""
    if resume is None:
        if not owner:
            return []
        if list_checkpoints(run_dir):
            raise UserError(
                f"run folder {run_dir} already holds checkpoints: pass resume=auto to continue it,"
                " or choose a new folder"
            )
        check_no_records(run_dir)
        return []
    if resume == "auto":
        return checkpoint_candidates(run_dir)
    found = checkpoint_candidates(resume)
    if not found:
        raise UserError(f"resume={resume}: no checkpoint found in that run folder")
    return found


class Checkpointer:
    """The checkpoints of one run folder, for one model and optimizer. Every process builds one
    (restoring reads on all); only the folder's writer (`is_main`, rank 0) writes."""

    def __init__(self, run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer: Any,
                 config: dict, is_main: bool = True):
        self.run_dir, self.model, self.optimizer, self.t = Path(run_dir), model, optimizer, trainer
        self.config, self.is_main = config, is_main
        self.last: Path | None = None  # the newest checkpoint written or restored

    # --- continuing

    def restore(self, resume: str | None, device: torch.device) -> tuple[TrainState, list[float] | None] | None:
        """Load the model and optimizer from the checkpoint `resume` chooses; (its state, its log
        window sums or None), or None when the run starts fresh. Unusable newer checkpoints are
        skipped with a line each (and set aside); a checkpoint that does not fit is one line."""
        candidates = resume_candidates(resume, self.run_dir, owner=self.is_main)
        if not candidates:
            if resume == "auto":
                log.info("resume=auto: no checkpoint in %s, starting fresh", self.run_dir)
            return None
        checkpoint, saved, skipped = load_usable_checkpoint(candidates, device, checkpoint_limit(self.model))
        for path, why in skipped:
            log.info("resume: skipping %s (%s)", path, why)
        if skipped:
            log.info("resume: falling back to %s, the newest intact checkpoint with finite values", checkpoint.name)
            if self.is_main:
                for path, _ in skipped:
                    if path.parent == self.run_dir / CHECKPOINT_DIR:
                        path.replace(path.with_name(path.name + ".unusable"))  # never chosen again
        self.check_same_optimizer(checkpoint, saved)
        try:
            self.model.load_state_dict(saved["model"])
        except RuntimeError as exc:
            raise UserError(
                f"checkpoint {checkpoint} does not fit this model config ({str(exc).splitlines()[0]})"
            ) from None
        try:
            self.optimizer.load_state_dict(saved["optimizer"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise UserError(
                f"checkpoint {checkpoint}: its optimizer state does not fit trainer.optimizer="
                f"{self.t.optimizer} ({str(exc).splitlines()[0]}); resume with the optimizer it was trained with"
            ) from None
        apply_settings(self.optimizer, self.t)
        state = TrainState.from_saved(saved["state"])
        window = (saved.get("window") or {}).get("sums")
        self.last = checkpoint
        log.info("resumed from %s at step %d", checkpoint, state.step)
        return state, window

    def check_same_optimizer(self, checkpoint: Path, saved: dict) -> None:
        """A checkpoint's optimizer state only fits the optimizer that wrote it: one line, before training."""
        trained = ((saved.get("config") or {}).get("trainer") or {}).get("optimizer")
        if trained is not None and trained != self.t.optimizer:
            raise UserError(
                f"checkpoint {checkpoint} was trained with trainer.optimizer={trained}, this run asks for"
                f" {self.t.optimizer}: resume with trainer.optimizer={trained}, or start a new run"
            )

    # --- writing

    def contents(self, state: TrainState, window: torch.Tensor) -> dict | None:
        """What a checkpoint holds now (None on the processes that write nothing); Diverged on a
        non-finite weight or optimizer value."""
        if not self.is_main:
            return None
        contents = checkpoint_contents(self.model, self.optimizer, state, window.tolist(), self.config)
        if not all_finite([contents["model"], contents["optimizer"]]):
            raise self.diverged(state.step, "the weights or optimizer state hold non-finite values")
        return contents

    def save(self, state: TrainState, window: torch.Tensor) -> Path | None:
        """checkpoints/step-N.pt for `state.step`, keeping the newest `trainer.keep_last`."""
        contents = self.contents(state, window)
        if contents is None:
            return None
        self.last = save_checkpoint(self.run_dir, state.step, contents, self.t.keep_last)
        return self.last

    def save_best(self, state: TrainState, window: torch.Tensor) -> None:
        """checkpoints/best.pt (`trainer.keep_best`): this step's checkpoint, beside the last ones;
        resumption and `reformer eval <run folder>` still take the newest step."""
        contents = self.contents(state, window)
        if contents is not None:
            save_named_checkpoint(self.run_dir, BEST, contents)

    def diverged(self, step: int, what: str) -> Diverged:
        """The error that stops a run that stopped being finite, naming the last finite checkpoint."""
        last = self.last if self.last is not None and self.last.is_file() else None
        where = (
            f"the last finite checkpoint is {last} (step {checkpoint_step(last)}): continue from it with a lower"
            f" trainer.lr or more trainer.warmup_steps (resume={self.run_dir} trainer.lr=...)"
            if last is not None
            else "no checkpoint was written: start again with a lower trainer.lr or more trainer.warmup_steps"
        )
        return Diverged(f"training diverged at step {step}: {what}; nothing after it is saved; {where}")
