"""The runner of `reformer reproduce --profile P`: the experiments of `experiments/` at one profile.

Every step runs as its own `python -m reformer_cli ...` process in a fixed folder,
`<outputs>/<profile>/<experiment>/<step>/` (default outputs/reproduce/...; folders.py), the
evaluations of one trained model together in one. What each kind of step (prepare, train, eval,
bench) runs, and when it is done, is its class's (steps.py). After each step its record is
curated into `<results>/runs/<profile>/<experiment>/<step>.json` (reformer_cli/reproduce/curate.py).

Before an experiment trains, the runner composes each run's config (a wrong override stops it
here, with one line) and checks the data of each task (`Task.check_data`) and the device; what is
missing is named in one line with the command that gets it, and the steps that need it are
skipped, never run on something else. A benchmark that this build does not have is skipped the
same way. `--time-limit` stops a running step cleanly (a training run saves a checkpoint) once the
time is up, so a reproduction can be split over sessions of bounded length. A training run that
another experiment of the profile already recorded with the very same arguments is not trained
again: its record is copied, naming the run it came from (`copied_from`). `--jobs N` runs up to N
training runs (each followed by its evaluations) at once, benchmarks alone (schedule.py).

Exit codes: 0 every step ran or was already done; 1 a step failed; 2 a user error (bad definition
or option); 3 some steps were skipped (data, device or command missing); 4 stopped by the time
limit (run the same command again to continue); 130 / 143 interrupted (likewise).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..definitions.experiments import EXPERIMENTS_DIR, Experiment, Step
from ..errors import UserError, one_line
from ..text import clock
from .curate import write_record
from .execute import execute
from .folders import StepFolders, relative
from .pack import pack
from .plan import DataCheck
from .schedule import Unit, run_units, units
from .steps import Evaluate, Prepare, StepRun, Train, step_runs

EXIT_OK, EXIT_FAILED, EXIT_SKIPPED, EXIT_TIME_LIMIT = 0, 1, 3, 4


@dataclass
class Outcome:
    step: Step
    status: str  # ran | done | skipped | failed | stopped
    message: str = ""
    seconds: float = 0.0


@dataclass
class Reproduction:
    """One `reformer reproduce` invocation."""

    profile: str
    experiments: list[Experiment]
    outputs: Path = Path("outputs/reproduce")
    results: Path = Path("results")
    experiments_dir: Path = EXPERIMENTS_DIR
    time_limit: float | None = None
    pack: Path | None = None
    verbose: bool = False
    jobs: int = 1
    out: TextIO = field(default_factory=lambda: sys.stdout)
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start = time.monotonic()
        self.stop_signal: int | None = None
        self.output_lock = threading.Lock()  # lines from parallel steps (--jobs) stay whole
        self.root = Path(self.outputs) / self.profile
        self.folders = StepFolders(self.root, Path(self.experiments_dir), Path(self.results))
        self.data = DataCheck()
        # experiment name -> its steps at this profile (experiments without the profile left out)
        self.runs = {e.name: step_runs(e.profile(self.profile).steps, self.folders)
                     for e in self.experiments if e.profile(self.profile)}

    def job(self, step: Step) -> StepRun:
        """The run of one of this profile's steps."""
        return next(run for run in self.runs[step.experiment] if run.name == step.name)

    # --- output and time

    def say(self, text: str) -> None:
        with self.output_lock:
            self.out.write(text + "\n")
            self.out.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def time_up(self) -> bool:
        return self.time_limit is not None and self.elapsed() >= self.time_limit

    def interrupted(self) -> bool:
        return self.stop_signal is not None or self.time_up()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_signal = signum

    def execute(self, argv: list[str], log_path: Path, shown: str, extra_env: dict[str, str]) -> tuple[int, list[str]]:
        """Run `python <argv>` (execute.py); a stop (time limit, SIGINT, SIGTERM) is passed on."""
        return execute(argv, log_path, shown, extra_env, stop=self.interrupted, echo=self.out if self.verbose else None)

    # --- one step

    def before(self, run: StepRun) -> Outcome | None:
        """The outcome of a step that needs no running (done, stopped, its training missing)."""
        if run.finished():
            return Outcome(run.definition, "done", "already done")
        if run.recorded():
            return Outcome(run.definition, "done", f"already recorded in {relative(run.folders.record_path(run.definition))}")
        twin = run.twin()
        if twin is not None:
            copy = run.copy_of(twin)
            write_record(self.results, run.definition, copy)
            return Outcome(run.definition, "done", f"the same run as {copy['copied_from']}: its record copied to"
                                                   f" {relative(run.folders.record_path(run.definition))}")
        if self.interrupted():
            return Outcome(run.definition, "stopped", "not started (time limit)" if self.time_up() else "not started")
        waiting = run.waiting_for()
        return Outcome(run.definition, "skipped", waiting) if waiting else None

    def after(self, run: StepRun, code: int, tail: list[str], log: Path) -> Outcome:
        """The outcome of a step that ran and exited with `code`."""
        if run.succeeded(code):
            return Outcome(run.definition, "ran", "ok")
        if self.interrupted():
            return Outcome(run.definition, "stopped", "stopped; run the same command again to continue")
        last = next((line for line in reversed(tail) if line.strip()), "")
        return Outcome(run.definition, "failed", f"exit {code}: {one_line(last)[:300]} (log: {relative(log)})")

    def report(self, run: StepRun, outcome: Outcome, where: str) -> Outcome:
        """Curate the record of a finished step, print its line."""
        if outcome.status in ("ran", "done") and run.finished():
            try:
                write_record(self.results, run.definition, run.curate())
            except UserError as exc:
                outcome = Outcome(run.definition, "failed", f"record: {one_line(str(exc))}", outcome.seconds)
        self.say(f"{where} {outcome.status}: {outcome.message} "
                 f"[{clock(outcome.seconds)}, total {clock(self.elapsed())}]")
        self.outcomes.append(outcome)
        return outcome

    def run_step(self, run: StepRun, where: str) -> Outcome:
        start = time.monotonic()
        try:
            outcome = self.before(run)
            if outcome is None:
                run.claim()
                code, tail = run.run(self.execute)
                outcome = self.after(run, code, tail, run.log)
        except UserError as exc:
            outcome = Outcome(run.definition, "failed", one_line(str(exc)))
        outcome.seconds = time.monotonic() - start
        return self.report(run, outcome, where)

    def run_evaluations(self, evaluations: list[Evaluate], where: dict[StepRun, str]) -> None:
        """The evaluations of one trained run, in one process (evaluations.py)."""
        pending: list[Evaluate] = []
        for run in evaluations:
            try:
                outcome = self.before(run)
                if outcome is None:
                    run.claim()
                    pending.append(run)
                    continue
            except UserError as exc:
                outcome = Outcome(run.definition, "failed", one_line(str(exc)))
            self.report(run, outcome, where[run])
        if not pending:
            return
        code, tail, results, log = Evaluate.run_together(pending, self.execute)
        for run in pending:
            result = results.get(run.evaluation().output)
            if result is not None and result.status == "ok" and run.finished():
                outcome = Outcome(run.definition, "ran", "ok", result.seconds)
            elif result is not None and result.status == "error":
                outcome = Outcome(run.definition, "failed", f"{result.message[:300]} (log: {relative(log)})",
                                  result.seconds)
            else:
                outcome = self.after(run, code or 1, tail, log)
            self.report(run, outcome, where[run])

    def run_unit(self, unit: Unit, where: dict[StepRun, str]) -> None:
        """A training run and its evaluations, or one other step (schedule.py)."""
        for batch in unit.batches:
            if isinstance(batch[0], Evaluate):
                self.run_evaluations(batch, where)
            else:
                self.run_step(batch[0], where[batch[0]])

    # --- the whole profile

    def plan(self) -> list[StepRun]:
        """Prepare the committed corpora, then check every step's requirements; report what is
        skipped (one line per experiment and reason) and return the steps to run."""
        planned: list[StepRun] = []
        for e in self.experiments:
            if e.name not in self.runs:
                self.say(f"{e.name}: no '{self.profile}' profile defined; skipped")
                continue
            planned += self.plan_experiment(e, self.runs[e.name])
        return planned

    def plan_experiment(self, experiment: Experiment, runs: list[StepRun]) -> list[StepRun]:
        rest = [run for run in runs if not isinstance(run, Prepare)]
        for prepare in (run for run in runs if isinstance(run, Prepare)):
            outcome = self.run_step(prepare, f"{experiment.name}: prepare {relative(prepare.folder)}")
            if outcome.status != "ran":
                self.skip(experiment, rest, "its data could not be prepared")
                return []
        planned: list[StepRun] = []
        reasons: dict[str, list[StepRun]] = {}
        blocked: dict[str, str] = {}  # step -> why the steps that need it cannot run either
        for run in rest:
            if run.needs is not None and run.needs.name in blocked:
                reasons.setdefault(blocked[run.needs.name], []).append(run)
                continue
            try:
                why = None if run.done() else run.missing(self.data)
            except UserError as exc:
                self.outcomes.append(Outcome(run.definition, "failed", one_line(str(exc))))
                self.say(f"{experiment.name}/{run.name}: failed: {one_line(str(exc))}")
                blocked[run.name] = "their training run failed"
                continue
            if why:
                reasons.setdefault(why, []).append(run)
                blocked[run.name] = why
            else:
                planned.append(run)
        for why, skipped in reasons.items():
            self.skip(experiment, skipped, why)
        return planned

    def skip(self, experiment: Experiment, runs: list[StepRun], why: str) -> None:
        if not runs:
            return
        names = ", ".join(r.name for r in runs[:4]) + (f" and {len(runs) - 4} more" if len(runs) > 4 else "")
        self.say(f"{experiment.name}: skipping {len(runs)} step(s) ({names}): {why}")
        self.outcomes += [Outcome(r.definition, "skipped", why) for r in runs]

    def run(self) -> int:
        names = ", ".join(e.name for e in self.experiments)
        self.say(f"reproduce {self.profile} ({names}): steps in {relative(self.root)}, records in"
                 f" {relative(Path(self.results) / 'runs' / self.profile)}")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            planned = self.plan()
            width = len(str(len(planned)))
            where = {run: f"[{i:>{width}}/{len(planned)}] {run.definition.experiment}/{run.name} ({run.definition.kind})"
                     for i, run in enumerate(planned, 1)}
            run_units(units(planned), lambda unit: self.run_unit(unit, where), self.jobs)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.pack is not None:
                self.pack_state(Path(self.pack))
        return self.finish()

    def unfinished(self) -> list[Train]:
        """Training runs another machine needs to continue this reproduction: started but not
        completed, or completed with evaluations still to run."""
        return [run for runs in self.runs.values() for run in runs if isinstance(run, Train) and run.unfinished()]

    def pack_state(self, path: Path) -> None:
        """Write what another machine needs to continue (pack.py): this profile's records and the
        folders of unfinished training runs."""
        records = Path(self.results) / "runs" / self.profile
        unfinished = self.unfinished()
        n = pack(path, [records / e.name for e in self.experiments], [run.folder for run in unfinished],
                 self.folders.base)
        size = path.stat().st_size / 2**20
        self.say(f"packed {n} files ({size:.1f} MiB; {len(unfinished)} unfinished run(s)) into"
                 f" {relative(path)}: `tar xzf` it in this folder on another machine, then run the same command")

    def finish(self) -> int:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        shown = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
        self.say(f"reproduce {self.profile}: {shown} in {clock(self.elapsed())}")
        if self.stop_signal is not None:
            return 128 + int(self.stop_signal)
        if counts.get("failed"):
            return EXIT_FAILED
        if counts.get("stopped"):
            self.say("stopped by the time limit: run the same command again to continue where it stopped")
            return EXIT_TIME_LIMIT
        if counts.get("skipped"):
            return EXIT_SKIPPED
        return EXIT_OK
