"""Where a reproduction's steps run and what their folders say.

Every step has a fixed folder, `<outputs>/<profile>/<experiment>/<step>/`, holding
`reproduce.json` (MARKER), the definition of the step that made it: a folder made by another
definition is refused (one line), never silently continued. A training folder is finished when its
summary says so (`train_completed`). A step's curated record is current when it was made by this
very definition (`StepFolders.current_record`); a training step defined exactly as one that another
experiment of the profile already recorded has a twin (`StepFolders.twin_record`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import run_folder
from ..definitions.curated import record_path
from ..definitions.experiments import Step, resolve
from ..errors import UserError

MARKER = "reproduce.json"


def relative(path: Path) -> str:
    """A path as a user would type it from the working folder (absolute if outside it)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve()) if not path.is_absolute() else str(path)


def marker(step: Step) -> dict:
    """What a step's folder records about the definition that made it."""
    return {"experiment": step.experiment, "profile": step.profile, "step": step.name, "kind": step.kind,
            "args": step.args}


@dataclass
class StepFolders:
    """The folders of one profile's reproduction: its steps' (under `root`), the definitions'
    (`experiments_dir`) and the records' (`results`); `base` is the working folder."""

    root: Path
    experiments_dir: Path
    results: Path
    base: Path = field(default_factory=Path.cwd)
    warned: set[str] = field(default_factory=set)  # lines said once (warn_once)

    def step_dir(self, step: Step) -> Path:
        return self.root / step.experiment / step.name

    def resolved(self, step: Step) -> list[str]:
        """The step's arguments with their placeholders filled in."""
        experiments = Path(relative(self.experiments_dir.resolve()))
        return [resolve(a, experiments=experiments, root=self.root, step_dir=self.step_dir(step)) for a in step.args]

    def claim(self, step: Step) -> None:
        """Write the marker into a fresh folder; refuse one made by another definition, and one
        that another process is writing (its lock is held, run_folder.py)."""
        folder = self.step_dir(step)
        path = folder / MARKER
        pid = run_folder.holder(folder)
        if pid is not None:
            raise UserError(
                f"{relative(folder)} is in use by another process (pid {pid}): wait for it to finish, or stop it"
            )
        if path.is_file():
            try:
                existing = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                existing = None
            if existing != marker(step):
                raise UserError(
                    f"{relative(folder)} was made by another definition of this step; delete that folder to run"
                    " the step again"
                )
            return
        if folder.is_dir() and any(folder.iterdir()):
            raise UserError(f"{relative(folder)} exists and was not made by reformer reproduce; move it away")
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(marker(step), indent=2) + "\n")

    def marked(self, step: Step) -> bool:
        """The step's folder holds a marker (of any definition)."""
        return (self.step_dir(step) / MARKER).is_file()

    def claimed(self, step: Step) -> bool:
        """The step's folder was made by reformer reproduce (by this definition: another is an
        error, raised here, not "not claimed")."""
        if not self.marked(step):
            return False
        self.claim(step)
        return True

    def train_completed(self, folder: Path) -> bool:
        """`train_completed(folder)`, a damaged summary said once on stderr."""
        return train_completed(folder, warn=self.warn_once)

    def warn_once(self, text: str) -> None:
        if text not in self.warned:
            self.warned.add(text)
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def record_path(self, step: Step) -> Path:
        return record_path(self.results, step)

    def current_record(self, step: Step) -> dict | None:
        """The curated record of `step` if it was made by this very definition, else None."""
        try:
            record = json.loads(self.record_path(step).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return record if isinstance(record, dict) and record.get("definition") == step.args else None

    def twin_record(self, step: Step) -> dict | None:
        """The completed record of the very same training made for another experiment of this
        profile (its `definition`, the arguments before their placeholders are filled, equal to this
        step's), or None. The same command trains the same model, so one record serves both
        (`Train.copy_of`)."""
        for path in sorted((Path(self.results) / "runs" / step.profile).glob("*/*.json")):
            if path.parent.name == step.experiment:
                continue
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError, RecursionError):
                continue
            if (isinstance(record, dict) and record.get("kind") == "train" and record.get("definition") == step.args
                    and summary_completed(record)):
                return record
        return None


def train_completed(run_dir: Path, warn: Callable[[str], None] | None = None) -> bool:
    """A training folder whose summary says it completed all its steps (or stopped early, by
    trainer.early_stop). A summary that is not a JSON object (a list, a string, nested too
    deeply) is an unfinished run, said by `warn` in one line."""
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except RecursionError:  # json.loads recurses once per level of [ or {
        summary = None
    except (OSError, ValueError):  # JSONDecodeError, UnicodeDecodeError
        return False
    if not isinstance(summary, dict):
        if warn is not None:
            warn(f"{relative(path)} is not a JSON object; taking the run as unfinished")
        return False
    return summary_completed(summary)


def summary_completed(summary: dict) -> bool:
    """A training summary, or a training record (which keeps its status, steps and config), that
    says the run completed all its steps or stopped early by trainer.early_stop."""
    config = summary.get("config")
    trainer = config.get("trainer") if isinstance(config, dict) else None
    wanted = trainer.get("max_steps") if isinstance(trainer, dict) else None
    return summary.get("status") == "early_stopped" or (
        summary.get("status") == "completed" and isinstance(wanted, int) and summary.get("steps") == wanted)
