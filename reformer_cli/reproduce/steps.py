"""The four kinds of step of a reproduction, one class each, holding what differs between them:
the command, when it is done, what it needs, how it runs and what its record holds.

    prepare   `reformer data prepare ...` for a corpus committed under experiments/: no folder to
              claim, no record, never done (the command itself is a no-op once the data is there)
    train     `reformer run ... hydra.run.dir=<folder> resume=auto`: an interrupted run continues
              from its last checkpoint; done once its summary says it completed
    eval      `reformer eval checkpoint=<train folder> ... output=<folder>/eval.json`: done once its
              result is newer than its training run's summary; the evaluations of one trained model
              run together in one process (evaluations.py)
    bench     `reformer bench ... --json <folder>/bench.json`: done once that file exists

A step of any kind is done when its folder holds its finished result (`finished`) or when a
curated record of this very definition exists (`recorded`: committed, or brought from another
machine), except at the smoke profile, whose point is running (a check that the pipeline works).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable, ClassVar

from ..definitions.curated import evaluated_before_training
from ..definitions.experiments import Step
from .curate import bench_payload, curate, eval_payload, train_payload
from .evaluations import Evaluation, Result, read_results, write_spec
from .folders import StepFolders
from .plan import DataCheck, compose_run, missing_benchmark, wants_missing_cuda

# execute.execute with the runner's stop and echo bound: (argv, log, shown, env) -> (exit code, last lines)
Execute = Callable[[list[str], Path, str, dict], tuple[int, list[str]]]


class StepRun:
    """One step of the profile being reproduced: its definition and the folders it runs in."""

    kind: ClassVar[str]

    def __init__(self, definition: Step, folders: StepFolders) -> None:
        self.definition = definition
        self.folders = folders

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def folder(self) -> Path:
        return self.folders.step_dir(self.definition)

    @property
    def log(self) -> Path:
        return self.folder / "reproduce.log"

    def command(self) -> list[str]:
        """The full argument list after `reformer`."""
        return self.folders.resolved(self.definition)

    def shown(self) -> str:
        return "reformer " + shlex.join(self.command())

    # --- done

    def finished(self) -> bool:
        """The step's folder holds its finished result (made by this definition)."""
        return self.folders.claimed(self.definition) and self.result_ready()

    def result_ready(self) -> bool:
        """The step's folder holds its result (its marker already checked)."""
        raise NotImplementedError

    def recorded(self) -> bool:
        """A curated record of this very definition exists, so the step need not run again (never
        at the smoke profile: its records are cheap, and running is its point)."""
        if self.definition.profile == "smoke":
            return False
        record = self.folders.current_record(self.definition)
        return record is not None and self.record_suffices(record)

    def record_suffices(self, record: dict) -> bool:
        """Whether the step's current record means it is done (`recorded`)."""
        return True

    def done(self) -> bool:
        return self.finished() or self.recorded()

    def twin(self) -> dict | None:
        """A record of this very step made for another experiment, to copy instead of running (a
        training run only: `Train.twin`)."""
        return None

    # --- before running

    def missing(self, data: DataCheck) -> str | None:
        """Why the step cannot run on this machine (data, device, command), or None."""
        return None

    @property
    def needs(self) -> StepRun | None:
        """The step whose result this one needs (an evaluation: its training run), or None."""
        return None

    def waiting_for(self) -> str | None:
        """Why the step cannot run yet (the step it needs did not finish), or None."""
        return None

    def claim(self) -> None:
        self.folders.claim(self.definition)

    # --- running and its record

    def run(self, execute: Execute) -> tuple[int, list[str]]:
        return execute(["-m", "reformer_cli", *self.command()], self.log, self.shown(), self.definition.env)

    def succeeded(self, code: int) -> bool:
        return code == 0 and self.finished()

    def payload(self) -> dict:
        """What the record keeps of the step's result (reformer_cli/reproduce/curate.py)."""
        raise NotImplementedError

    def curate(self) -> dict:
        """The curated record of the finished step."""
        return curate(self.definition, self.payload(), self.shown(), self.folders.base)


class Prepare(StepRun):
    kind = "prepare"

    def finished(self) -> bool:
        return False

    def recorded(self) -> bool:
        return False

    def claim(self) -> None:
        """A prepare step writes the prepared data elsewhere: its folder holds only its log."""

    def succeeded(self, code: int) -> bool:
        return code == 0


class Train(StepRun):
    kind = "train"

    def __init__(self, definition: Step, folders: StepFolders) -> None:
        super().__init__(definition, folders)
        self.evaluations: list[Evaluate] = []  # linked by `step_runs`

    def command(self) -> list[str]:
        return [*super().command(), f"hydra.run.dir={self.folder}", "resume=auto", "trainer.progress=plain"]

    def result_ready(self) -> bool:
        return self.folders.train_completed(self.folder)

    def record_suffices(self, record: dict) -> bool:
        """Only once every evaluation of it is done too, since an evaluation needs its checkpoint."""
        return all(e.done() for e in self.evaluations)

    def missing(self, data: DataCheck) -> str | None:
        """A CUDA device it asks for, then its task's data (composing its config first: a wrong
        override is a one-line error here)."""
        return wants_missing_cuda(self.definition.args) or data.missing(compose_run(super().command()[1:]))

    def payload(self) -> dict:
        return train_payload(self.folder)

    def twin(self) -> dict | None:
        """The record of the same training made for another experiment (StepFolders.twin_record),
        when nothing here needs this run's own checkpoint (it has no evaluations) and the profile is
        not smoke (whose point is to run)."""
        if self.definition.profile == "smoke" or self.evaluations:
            return None
        return self.folders.twin_record(self.definition)

    def copy_of(self, twin: dict) -> dict:
        """This step's record made from its twin's: the same numbers and command, this experiment's
        names, and `copied_from` naming the run that trained it."""
        step = self.definition
        return {**twin, "experiment": step.experiment, "step": step.name, "labels": step.labels,
                "copied_from": twin.get("copied_from") or f"{twin['experiment']}/{twin['step']}"}

    def unfinished(self) -> bool:
        """Another machine would need its folder to continue: started here, and not completed or
        completed with evaluations still to run (and not recorded)."""
        if not self.folders.marked(self.definition) or self.recorded():
            return False
        return not self.folders.train_completed(self.folder) or not all(e.done() for e in self.evaluations)


class Evaluate(StepRun):
    kind = "eval"
    training: Train  # linked by `step_runs`

    @property
    def needs(self) -> Train:
        return self.training

    def evaluation(self) -> Evaluation:
        """The step as an entry of a batch (evaluations.py)."""
        return Evaluation(checkpoint=str(self.training.folder), settings=super().command()[1:],
                          output=str(self.folder / "eval.json"), folder=str(self.folder))

    def command(self) -> list[str]:
        return ["eval", *self.evaluation().arguments()]

    def result_ready(self) -> bool:
        summary = self.training.folder / "summary.json"
        result = self.folder / "eval.json"
        return result.is_file() and summary.is_file() and result.stat().st_mtime >= summary.stat().st_mtime

    def record_suffices(self, record: dict) -> bool:
        """An evaluation of an earlier training run (one whose definition has since changed, or that
        was trained again) is not an evaluation of this one."""
        trained = self.folders.current_record(self.training.definition)
        return trained is not None and not evaluated_before_training(record, trained)

    def missing(self, data: DataCheck) -> str | None:
        return wants_missing_cuda(self.definition.args)

    def waiting_for(self) -> str | None:
        if not self.folders.train_completed(self.training.folder):
            return f"its training run {self.training.name} did not complete"
        return None

    def payload(self) -> dict:
        return eval_payload(self.folder / "eval.json")

    @staticmethod
    def run_together(evaluations: list[Evaluate], execute: Execute) -> tuple[int, list[str], dict[str, Result], Path]:
        """The evaluations of one trained model in one process (evaluations.py): (its exit code, its
        last lines, {output: result}, its log)."""
        training = evaluations[0].training
        folder = training.folder.parent
        spec = folder / f".{training.name}.evals.json"
        answers = folder / f".{training.name}.evals.results.json"
        write_spec(spec, [e.evaluation() for e in evaluations])
        answers.unlink(missing_ok=True)
        log = folder / f"{training.name}.evals.log"
        shown = "; ".join(e.shown() for e in evaluations)
        code, tail = execute(["-m", "reformer_cli.reproduce.evaluations", str(spec), str(answers)], log, shown,
                             evaluations[0].definition.env)
        return code, tail, read_results(answers), log


class Bench(StepRun):
    kind = "bench"

    def command(self) -> list[str]:
        return [*super().command(), "--json", str(self.folder / "bench.json")]

    def result_ready(self) -> bool:
        return (self.folder / "bench.json").is_file()

    def missing(self, data: DataCheck) -> str | None:
        args = self.definition.args
        return missing_benchmark(args[1] if len(args) > 1 else "")

    def payload(self) -> dict:
        return bench_payload(self.folder / "bench.json")


KINDS: dict[str, type[StepRun]] = {kind.kind: kind for kind in (Prepare, Train, Evaluate, Bench)}


def step_runs(steps: list[Step], folders: StepFolders) -> list[StepRun]:
    """The runs of one profile's steps, in order, each evaluation linked to its training run and back."""
    runs = [KINDS[step.kind](step, folders) for step in steps]
    trained: dict[str, Train] = {run.name: run for run in runs if isinstance(run, Train)}
    for run in runs:
        if isinstance(run, Evaluate):
            run.training = trained[run.definition.evaluates]
            run.training.evaluations.append(run)
    return runs
