"""The runner of `reformer reproduce --profile P`: the experiments of `experiments/` at one profile.

Every step runs as its own `python -m reformer_cli ...` process in a fixed folder,
`<outputs>/<profile>/<experiment>/<step>/` (default outputs/reproduce/...):

* train: `reformer run ... hydra.run.dir=<folder> resume=auto`: an interrupted run continues from
  its last checkpoint; a run whose summary says it completed is not run again;
* eval: `reformer eval checkpoint=<train folder> ... output=<folder>/eval.json`, run again only
  when its training run is newer than the evaluation;
* bench: `reformer bench ... --json <folder>/bench.json`, once;
* prepare: `reformer data prepare ...` for a corpus committed under experiments/ (a no-op once done).

Each folder holds `reproduce.json`, the definition of the step that made it: a folder made by
another definition is refused (one line), never silently continued. After each step its record
is curated into `<results>/runs/<profile>/<experiment>/<step>.json` (reformer_cli/reproduce/curate.py).

Before an experiment trains, the runner composes each run's config (a wrong override stops it
here, with one line) and checks the data of each task (`Task.check_data`) and the device; what is
missing is named in one line with the command that gets it, and the steps that need it are
skipped, never run on something else. A benchmark that this build does not have is skipped the
same way. `--time-limit` stops a running step cleanly (a training run saves a checkpoint) once the
time is up, so a reproduction can be split over sessions of bounded length.

Exit codes: 0 every step ran or was already done; 1 a step failed; 2 a user error (bad definition
or option); 3 some steps were skipped (data, device or command missing); 4 stopped by the time
limit (run the same command again to continue); 130 / 143 interrupted (likewise).
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from .. import run_folder
from ..errors import UserError, one_line
from .curate import curate, record_path, write_record
from .evaluations import read_results, write_spec
from .execute import execute
from .experiments import EXPERIMENTS_DIR, Experiment, Step, resolve
from .pack import pack
from .plan import DataCheck, compose_run, missing_benchmark, wants_missing_cuda

MARKER = "reproduce.json"

EXIT_OK, EXIT_FAILED, EXIT_SKIPPED, EXIT_TIME_LIMIT = 0, 1, 3, 4


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _relative(path: Path) -> str:
    """A path as a user would type it from the working folder (absolute if outside it)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve()) if not path.is_absolute() else str(path)


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
    out: TextIO = field(default_factory=lambda: sys.stdout)
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start = time.monotonic()
        self.stop_signal: int | None = None
        self.root = Path(self.outputs) / self.profile
        self.base = Path.cwd()
        self.data = DataCheck()
        self.warned: set[str] = set()  # lines said once (warn_once)

    # --- output

    def train_completed(self, folder: Path) -> bool:
        """`train_completed(folder)`, a damaged summary said once on stderr."""
        return train_completed(folder, warn=self.warn_once)

    def warn_once(self, text: str) -> None:
        if text not in self.warned:
            self.warned.add(text)
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def time_up(self) -> bool:
        return self.time_limit is not None and self.elapsed() >= self.time_limit

    # --- folders and commands

    def step_dir(self, step: Step) -> Path:
        return self.root / step.experiment / step.name

    def resolved(self, step: Step) -> list[str]:
        experiments = Path(_relative(self.experiments_dir.resolve()))
        return [resolve(a, experiments=experiments, root=self.root, step_dir=self.step_dir(step)) for a in step.args]

    def command(self, step: Step) -> list[str]:
        """The full argument list after `reformer`."""
        folder = self.step_dir(step)
        args = self.resolved(step)
        if step.kind == "train":
            return [*args, f"hydra.run.dir={folder}", "resume=auto", "trainer.progress=plain"]
        if step.kind == "eval":
            train_dir = self.root / step.experiment / step.evaluates
            return [args[0], f"checkpoint={train_dir}", *args[1:], f"output={folder / 'eval.json'}",
                    f"hydra.run.dir={folder}", "progress=plain"]
        if step.kind == "bench":
            return [*args, "--json", str(folder / "bench.json")]
        return args

    # --- state of a step's folder

    def marker(self, step: Step) -> dict:
        return {"experiment": step.experiment, "profile": step.profile, "step": step.name, "kind": step.kind,
                "args": step.args}

    def claim_folder(self, step: Step) -> None:
        """Write the marker into a fresh folder; refuse one made by another definition, and one
        that another process is writing (its lock is held, run_folder.py)."""
        folder = self.step_dir(step)
        path = folder / MARKER
        pid = run_folder.holder(folder)
        if pid is not None:
            raise UserError(
                f"{_relative(folder)} is in use by another process (pid {pid}): wait for it to finish, or stop it"
            )
        if path.is_file():
            try:
                existing = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                existing = None
            if existing != self.marker(step):
                raise UserError(
                    f"{_relative(folder)} was made by another definition of this step; delete that folder to run"
                    " the step again"
                )
            return
        if folder.is_dir() and any(folder.iterdir()):
            raise UserError(f"{_relative(folder)} exists and was not made by reformer reproduce; move it away")
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.marker(step), indent=2) + "\n")

    def folder_done(self, step: Step) -> bool:
        """The step's folder holds its finished result (made by this definition)."""
        folder = self.step_dir(step)
        if not (folder / MARKER).is_file():
            return False
        self.claim_folder(step)  # a folder of another definition is an error, not "done"
        if step.kind == "train":
            return self.train_completed(folder)
        if step.kind == "eval":
            summary = self.root / step.experiment / step.evaluates / "summary.json"
            result = folder / "eval.json"
            return result.is_file() and summary.is_file() and result.stat().st_mtime >= summary.stat().st_mtime
        if step.kind == "bench":
            return (folder / "bench.json").is_file()
        return False

    def record_done(self, step: Step) -> bool:
        """A curated record of this very definition exists (committed, or brought from another
        machine): the step need not run again. A training run counts only once every evaluation
        of it is done too, since an evaluation needs its checkpoint. Not for the smoke profile:
        its records are cheap, and running is its point (a check that the pipeline works here)."""
        if step.profile == "smoke":
            return False
        record = self.current_record(step)
        if record is None:
            return False
        if step.kind == "train":
            return all(self.is_done(e) for e in self.evaluations_of(step))
        if step.kind == "eval":
            # an evaluation of an earlier training run (one whose definition has since changed, or
            # that was trained again) is not an evaluation of this one
            trained = self.current_record(self.trained_by(step))
            return trained is not None and str(record.get("date") or "") >= str(trained.get("date") or "~")
        return True

    def current_record(self, step: Step) -> dict | None:
        """The curated record of `step` if it was made by this very definition, else None."""
        try:
            record = json.loads(record_path(self.results, step).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return record if isinstance(record, dict) and record.get("definition") == step.args else None

    def trained_by(self, step: Step) -> Step:
        """The training step an evaluation step evaluates."""
        experiment = next(e for e in self.experiments if e.name == step.experiment)
        return next(s for s in experiment.profile(step.profile).steps if s.kind == "train" and s.name == step.evaluates)

    def is_done(self, step: Step) -> bool:
        if step.kind == "prepare":
            return False
        return self.folder_done(step) or self.record_done(step)

    def evaluations_of(self, step: Step) -> list[Step]:
        experiment = next(e for e in self.experiments if e.name == step.experiment)
        return [s for s in experiment.profile(step.profile).steps if s.kind == "eval" and s.evaluates == step.name]

    # --- checks before running

    def missing_requirement(self, step: Step) -> str | None:
        """Why `step` cannot run here (data, device, command), or None."""
        if self.is_done(step):
            return None
        if step.kind == "bench":
            return missing_benchmark(step.args[1] if len(step.args) > 1 else "")
        if step.kind == "eval":
            return wants_missing_cuda(step.args)
        if step.kind != "train":
            return None
        cuda = wants_missing_cuda(step.args)
        if cuda:
            return cuda
        return self.data.missing(compose_run(self.resolved(step)[1:]))

    # --- running

    def execute(self, argv: list[str], log_path: Path, shown: str, extra_env: dict[str, str]) -> tuple[int, list[str]]:
        """Run `python <argv>` (execute.py); a stop (time limit, SIGINT, SIGTERM) is passed on."""
        return execute(argv, log_path, shown, extra_env, stop=self.interrupted, echo=self.out if self.verbose else None)

    def interrupted(self) -> bool:
        return self.stop_signal is not None or self.time_up()

    def before(self, step: Step) -> Outcome | None:
        """The outcome of a step that needs no running (done, stopped, its training missing)."""
        if step.kind != "prepare" and self.folder_done(step):
            return Outcome(step, "done", "already done")
        if step.kind != "prepare" and self.record_done(step):
            return Outcome(step, "done", f"already recorded in {_relative(record_path(self.results, step))}")
        if self.interrupted():
            return Outcome(step, "stopped", "not started (time limit)" if self.time_up() else "not started")
        if step.kind == "eval" and not self.train_completed(self.root / step.experiment / step.evaluates):
            return Outcome(step, "skipped", f"its training run {step.evaluates} did not complete")
        return None

    def after(self, step: Step, code: int, tail: list[str], log: Path) -> Outcome:
        """The outcome of a step that ran and exited with `code`."""
        if code == 0 and (step.kind == "prepare" or self.folder_done(step)):
            return Outcome(step, "ran", "ok")
        if self.interrupted():
            return Outcome(step, "stopped", "stopped; run the same command again to continue")
        last = next((line for line in reversed(tail) if line.strip()), "")
        return Outcome(step, "failed", f"exit {code}: {one_line(last)[:300]} (log: {_relative(log)})")

    def report(self, outcome: Outcome, where: str) -> Outcome:
        """Curate the record of a finished step, print its line."""
        step = outcome.step
        if outcome.status in ("ran", "done") and step.kind != "prepare" and self.folder_done(step):
            try:
                record = curate(step, self.step_dir(step), "reformer " + shlex.join(self.command(step)), self.base)
                write_record(self.results, step, record)
            except UserError as exc:
                outcome = Outcome(step, "failed", f"record: {one_line(str(exc))}", outcome.seconds)
        self.say(f"{where} {outcome.status}: {outcome.message} "
                 f"[{format_seconds(outcome.seconds)}, total {format_seconds(self.elapsed())}]")
        self.outcomes.append(outcome)
        return outcome

    def run_step(self, step: Step, where: str) -> Outcome:
        start = time.monotonic()
        try:
            outcome = self.before(step)
            if outcome is None:
                if step.kind != "prepare":
                    self.claim_folder(step)
                log = self.step_dir(step) / "reproduce.log"
                args = self.command(step)
                code, tail = self.execute(["-m", "reformer_cli", *args], log, "reformer " + shlex.join(args), step.env)
                outcome = self.after(step, code, tail, log)
        except UserError as exc:
            outcome = Outcome(step, "failed", one_line(str(exc)))
        outcome.seconds = time.monotonic() - start
        return self.report(outcome, where)

    def run_evals(self, steps: list[Step], wheres: list[str]) -> None:
        """The evaluations of one trained run, in one process (evaluations.py)."""
        pending: list[Step] = []
        for step, where in zip(steps, wheres):
            try:
                outcome = self.before(step)
                if outcome is None:
                    self.claim_folder(step)
                    pending.append(step)
                    continue
            except UserError as exc:
                outcome = Outcome(step, "failed", one_line(str(exc)))
            self.report(outcome, where)
        if not pending:
            return
        folder = self.root / pending[0].experiment
        spec = folder / f".{pending[0].evaluates}.evals.json"
        answers = folder / f".{pending[0].evaluates}.evals.results.json"
        write_spec(spec, [self.command(s)[1:] for s in pending])
        answers.unlink(missing_ok=True)
        log = folder / f"{pending[0].evaluates}.evals.log"
        shown = "; ".join("reformer " + shlex.join(self.command(s)) for s in pending)
        code, tail = self.execute(["-m", "reformer_cli.reproduce.evaluations", str(spec), str(answers)], log, shown,
                                  pending[0].env)
        results = read_results(answers)
        for step in pending:
            result = results.get(str(self.step_dir(step) / "eval.json"))
            if result is not None and result.status == "ok" and self.folder_done(step):
                outcome = Outcome(step, "ran", "ok", result.seconds)
            elif result is not None and result.status == "error":
                outcome = Outcome(step, "failed", f"{result.message[:300]} (log: {_relative(log)})", result.seconds)
            else:
                outcome = self.after(step, code or 1, tail, log)
            self.report(outcome, wheres[steps.index(step)])

    def plan(self) -> list[Step]:
        """Prepare the committed corpora, then check every step's requirements; report what is
        skipped (one line per experiment and reason) and return the steps to run."""
        planned: list[Step] = []
        for e in self.experiments:
            profile = e.profile(self.profile)
            if profile is None:
                self.say(f"{e.name}: no '{self.profile}' profile defined; skipped")
                continue
            prepares = [s for s in profile.steps if s.kind == "prepare"]
            rest = [s for s in profile.steps if s.kind != "prepare"]
            for step in prepares:
                outcome = self.run_step(step, f"{e.name}: prepare {_relative(self.step_dir(step))}")
                if outcome.status != "ran":
                    self.skip(e, rest, "its data could not be prepared")
                    rest = []
                    break
            reasons: dict[str, list[Step]] = {}
            blocked: dict[str, str] = {}  # train step -> why its evaluations cannot run either
            for step in rest:
                if step.kind == "eval" and step.evaluates in blocked:
                    reasons.setdefault(blocked[step.evaluates], []).append(step)
                    continue
                try:
                    why = self.missing_requirement(step)
                except UserError as exc:
                    self.outcomes.append(Outcome(step, "failed", one_line(str(exc))))
                    self.say(f"{e.name}/{step.name}: failed: {one_line(str(exc))}")
                    blocked[step.name] = "their training run failed"
                    continue
                if why:
                    reasons.setdefault(why, []).append(step)
                    blocked[step.name] = why
                else:
                    planned.append(step)
            for why, steps in reasons.items():
                self.skip(e, steps, why)
        return planned

    def skip(self, experiment: Experiment, steps: list[Step], why: str) -> None:
        if not steps:
            return
        names = ", ".join(s.name for s in steps[:4]) + (f" and {len(steps) - 4} more" if len(steps) > 4 else "")
        self.say(f"{experiment.name}: skipping {len(steps)} step(s) ({names}): {why}")
        self.outcomes += [Outcome(s, "skipped", why) for s in steps]

    def run(self) -> int:
        names = ", ".join(e.name for e in self.experiments)
        self.say(f"reproduce {self.profile} ({names}): steps in {_relative(self.root)}, records in"
                 f" {_relative(Path(self.results) / 'runs' / self.profile)}")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            planned = self.plan()
            width = len(str(len(planned)))
            wheres = [f"[{i:>{width}}/{len(planned)}] {s.experiment}/{s.name} ({s.kind})" for i, s in enumerate(planned, 1)]
            i = 0
            while i < len(planned):
                step = planned[i]
                if step.kind != "eval":
                    self.run_step(step, wheres[i])
                    i += 1
                    continue
                j = i
                while j < len(planned) and planned[j].kind == "eval" and planned[j].evaluates == step.evaluates:
                    j += 1
                self.run_evals(planned[i:j], wheres[i:j])
                i = j
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.pack is not None:
                self.pack_state(Path(self.pack))
        return self.finish()

    def unfinished(self) -> list[Step]:
        """Training runs another machine needs to continue this reproduction: started but not
        completed, or completed with evaluations still to run."""
        found = []
        for e in self.experiments:
            profile = e.profile(self.profile)
            for step in profile.steps if profile else []:
                folder = self.step_dir(step)
                if step.kind != "train" or not (folder / MARKER).is_file() or self.record_done(step):
                    continue
                if not self.train_completed(folder) or not all(self.is_done(ev) for ev in self.evaluations_of(step)):
                    found.append(step)
        return found

    def pack_state(self, path: Path) -> None:
        """Write what another machine needs to continue (pack.py): this profile's records and the
        folders of unfinished training runs."""
        records = Path(self.results) / "runs" / self.profile
        unfinished = self.unfinished()
        n = pack(path, [records / e.name for e in self.experiments], [self.step_dir(s) for s in unfinished], self.base)
        size = path.stat().st_size / 2**20
        self.say(f"packed {n} files ({size:.1f} MiB; {len(unfinished)} unfinished run(s)) into"
                 f" {_relative(path)}: `tar xzf` it in this folder on another machine, then run the same command")

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_signal = signum

    def finish(self) -> int:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        shown = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
        self.say(f"reproduce {self.profile}: {shown} in {format_seconds(self.elapsed())}")
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


# ------------------------------------------------------------------------------------ helpers


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
            warn(f"{_relative(path)} is not a JSON object; taking the run as unfinished")
        return False
    config = summary.get("config")
    trainer = config.get("trainer") if isinstance(config, dict) else None
    wanted = trainer.get("max_steps") if isinstance(trainer, dict) else None
    return summary.get("status") == "early_stopped" or (
        summary.get("status") == "completed" and isinstance(wanted, int) and summary.get("steps") == wanted)
