"""`reformer_cli.load(run_folder_or_checkpoint)`: a trained model, its run config and its task, read
the way `reformer eval` reads them (evaluation.load_trained, trained_run_config, trained_model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .runtime import select_device
from .evaluation import load_trained, trained_model, trained_run_config
from .model.reformer import ReformerLM
from .tasks.base import Task


@dataclass
class Trained:
    """What `load` returns; unpacks as `model, config, task = load(...)`."""

    model: ReformerLM  # in eval mode
    config: Any  # the run's config (OmegaConf), its attention completed as `reformer eval` does
    task: Task  # its data is checked when first read (evaluation, image prompts)
    checkpoint: Path
    step: int | None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.config, self.task))


def load(run_folder_or_checkpoint: str | Path, device: str = "cpu", option: str = "device") -> Trained:
    """The trained model of a run folder (its newest checkpoint) or a checkpoint file, on `device`
    (a device name, runtime.select_device; `option` names it in the error: `--device` for a flag).
    A path that is neither, or a damaged checkpoint, is a UserError (one line)."""
    target = select_device(device, option)
    path, saved = load_trained(str(run_folder_or_checkpoint))
    config, _ = trained_run_config(saved)
    model, task = trained_model(path, saved, config, check_data=False)
    model.to(target).eval()
    return Trained(model, config, task, path, (saved.get("state") or {}).get("step"))
