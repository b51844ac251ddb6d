"""Sweeps (`reformer run -m ...`, `reformer eval -m ...`): jobs named by what varies, every job run,
and one table at the end. Part of the Hydra boundary (beside hydra_entry.py): it reads Hydra's job
state; hydra and omegaconf are imported only when a function needs them, torch never.

* Before Hydra starts, `note_sweep(args)` records which keys the command line sweeps
  (`seed=0,1 trainer.lr=1e-3,3e-3` -> seed, trainer.lr) in the environment, where every job
  (also one a launcher starts elsewhere) finds them.
* In a job, `run_identity()` names it by those keys' values (`lr=3e-3,seed=1`), with the W&B group
  = the sweep folder and tags = the config group choices (`attention=lsh`, `model=tiny`) plus the
  swept values. A run outside a sweep keeps its default name and gets the choices as tags.
* `run_sweep_job` runs one job of a sweep: an error in it is reported (one line; a bug's traceback
  is printed) and recorded in the job folder's `job.json`, and the sweep goes on with the next job.
  An interruption (Ctrl-C, SIGTERM) still stops the whole sweep.
* `SweepReport`, a Hydra callback (conf/config.yaml, conf/eval.yaml), writes at the end of `-m` the
  table of jobs x status x final and best metrics into `sweep.json` and `sweep.md` in the sweep
  folder and prints it; for `reformer eval -m` sweep.json also holds every evaluation record, and
  sweep.md a table of trained x evaluated attention (Table 2's layout). `exit_code()` then tells
  the command line whether any job failed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import yaml

from . import shipped
from .errors import UserError, one_line
from .loggers import RunIdentity
from .records import write_json_atomic, write_text_atomic
from .text import clock, escape_bars, markdown_table, shown_path

SWEEP_KEYS_ENV = "REFORMER_SWEEP_KEYS"
JOB_RECORD = "job.json"
SWEEP_JSON, SWEEP_MD = "sweep.json", "sweep.md"
# config groups whose choice says nothing about a run (every run has the same)
UNTAGGED_GROUPS = ("trainer", "logger")
MAX_TAG = 64  # W&B's limit on a tag's length

_last_report: dict | None = None  # the report of the sweep this process just ran


# ------------------------------------------------------------------------------------ before Hydra


MULTIRUN_FLAGS = ("-m", "--multirun")


def is_multirun(args: list[str]) -> bool:
    return any(a in MULTIRUN_FLAGS for a in args)


def swept_keys(args: list[str]) -> list[str]:
    """The keys (or config groups) that `args` sweep over, in command-line order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    keys = []
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            (override,) = parser.parse_overrides([arg])
        except Exception:  # Hydra reports it when it parses the command line itself
            continue
        key = override.key_or_group
        if override.is_sweep_override() and not key.startswith("hydra") and key not in keys:
            keys.append(key)
    return keys


def searched_keys(args: list[str]) -> list[str]:
    """The keys a `hparams_search=<name>` preset (conf/hparams_search/) searches, and those given as
    `hydra.sweeper.params.<key>=...`: a search's trials are named by their values too."""
    keys: list[str] = []
    for arg in args:
        if arg.startswith("hparams_search="):
            try:
                preset = yaml.safe_load((shipped("conf") / "hparams_search" / f"{arg.split('=', 1)[1]}.yaml").read_text())
                keys += list(((preset.get("hydra") or {}).get("sweeper") or {}).get("params") or {})
            except (OSError, AttributeError, yaml.YAMLError):
                continue  # Hydra reports an unknown preset
        elif arg.startswith("hydra.sweeper.params.") and "=" in arg:
            keys.append(arg.split("=", 1)[0][len("hydra.sweeper.params."):])
    return keys


def note_sweep(args: list[str]) -> None:
    """Before a `-m` command line reaches Hydra: record the swept keys for the jobs."""
    global _last_report
    _last_report = None
    if is_multirun(args):
        keys = swept_keys(args)
        os.environ[SWEEP_KEYS_ENV] = json.dumps(keys + [k for k in searched_keys(args) if k not in keys])


# ------------------------------------------------------------------------------------ in a job


def _hydra_config() -> Any | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def in_sweep() -> bool:
    """Whether this process is running a job of a `-m` sweep."""
    from hydra.types import RunMode

    hc = _hydra_config()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def short_names(keys: list[str]) -> dict[str, str]:
    """Each key by its shortest dotted suffix that no other key shares: trainer.lr -> lr, but
    model.dropout and attention.dropout keep their groups."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            candidate = ".".join(parts[-n:])
            if not any(other != key and (other == candidate or other.endswith("." + candidate)) for other in keys):
                break
        names[key] = candidate
    return names


def _seconds(value: Any) -> float | None:
    """A record's number of seconds; None when it holds none."""
    return value if isinstance(value, (int, float)) else None


def job_values(hc: Any) -> dict[str, str]:
    """key -> value as the job's own overrides give it (`trainer.lr=3e-3` -> {'trainer.lr': '3e-3'})."""
    values = {}
    for override in hc.overrides.task:
        key, sep, value = str(override).partition("=")
        if sep:
            values[key.lstrip("+~")] = value
    return values


def job_name(hc: Any) -> str:
    """`lr=3e-3,seed=1`: the swept keys' values of this job (job<N> when none are known)."""
    keys = json.loads(os.environ.get(SWEEP_KEYS_ENV, "[]") or "[]")
    values = job_values(hc)
    names = short_names([k for k in keys if k in values])
    name = ",".join(f"{names[k]}={values[k]}" for k in keys if k in values)
    return name or f"job{hc.job.num}"


def run_identity() -> RunIdentity:
    """The name, W&B group and tags of the current Hydra job."""
    hc = _hydra_config()
    if hc is None:
        return RunIdentity()
    choices = [f"{group}={choice}" for group, choice in hc.runtime.choices.items()
               if choice is not None and "/" not in group and not group.startswith(("hydra", "schema"))
               and group not in UNTAGGED_GROUPS]
    if not in_sweep():
        return RunIdentity(tags=[t[:MAX_TAG] for t in choices])
    name = job_name(hc)
    tags = [*choices, *(part for part in name.split(",") if "=" in part)]
    return RunIdentity(name=name, group=shown_path(Path(hc.sweep.dir)), tags=[t[:MAX_TAG] for t in dict.fromkeys(tags)])


def _finite(obj: Any) -> Any:
    """`obj` with non-finite floats as None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def job_result(result: Any) -> dict | None:
    """What the sweep table needs from a job's return value: a training summary (reformer run) or
    an evaluation record (reformer eval), which is kept whole (it is small)."""
    if not isinstance(result, dict):
        return None
    if result.get("kind") == "eval":
        return _finite(result)
    keys = ("status", "run_name", "metric", "final", "best", "steps", "wall_seconds", "tokens_per_second")
    return _finite({"kind": "train", **{k: result.get(k) for k in keys}})


def run_sweep_job(task_function: Callable[[Any], Any], cfg: Any, full_error: bool = False) -> Any:
    """One job of a sweep. A user error ends this job with one line, a bug with its traceback;
    either way `job.json` records it and the sweep continues. An interruption stops the sweep."""
    hc = _hydra_config()
    job_dir = Path(hc.runtime.output_dir)
    entry: dict[str, Any] = {"num": int(hc.job.num), "name": job_name(hc), "overrides": list(hc.overrides.task),
                             "folder": shown_path(job_dir)}
    result, error = None, None
    try:
        result = task_function(cfg)
    except UserError as exc:
        if full_error:
            raise
        error = one_line(str(exc))
        sys.stderr.write(f"error: job {entry['num']} ({entry['name']}): {error}\n")
    except SystemExit as exc:  # an interruption stops the sweep; any other exit fails this job only
        if exc.code in (130, 143) or full_error:
            raise
        error = f"exited with code {exc.code}"
    except Exception as exc:
        if full_error:
            raise
        traceback.print_exc()
        error = f"{type(exc).__name__}: {one_line(str(exc))}"
    entry.update(status="failed" if error else "ok", error=error, result=job_result(result))
    write_json_atomic(job_dir / JOB_RECORD, entry)
    return result


# ------------------------------------------------------------------------------------ at the end


def read_jobs(sweep_dir: Path) -> list[dict]:
    """The job records of a sweep folder, by job number."""
    jobs = []
    for path in Path(sweep_dir).glob(f"*/{JOB_RECORD}"):
        try:
            jobs.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(jobs, key=lambda j: j.get("num", 0))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def train_rows(jobs: list[dict]) -> tuple[list[str], list[list[str]]]:
    metric = next((j["result"]["metric"] for j in jobs if (j.get("result") or {}).get("metric")), "metric")
    header = ["job", "name", "status", "steps", f"final valid {metric}", f"best periodic valid {metric} (step)",
              "final valid loss", "time"]
    rows = []
    for j in jobs:
        r = j.get("result") or {}
        valid = (r.get("final") or {}).get("valid") or {}
        best = r.get("best") or {}
        # the best periodic evaluation, marked when it is an estimate (part of the split; eval_plan.py)
        estimate = ", estimate" if best.get("split") == "valid_estimate" else ""
        best_text = f"{_num(best.get(metric))} ({best.get('step')}{estimate})" if best.get(metric) is not None else "-"
        status = j.get("status", "?") if j.get("status") != "ok" else (r.get("status") or "ok")
        rows.append([str(j.get("num")), str(j.get("name")), status, _num(r.get("steps")), _num(valid.get(metric)),
                     best_text, _num(valid.get("loss")), clock(_seconds(r.get("wall_seconds")))])
    return header, rows


def eval_rows(jobs: list[dict]) -> tuple[list[str], list[list[str]]]:
    metric = next((j["result"]["metric"] for j in jobs if (j.get("result") or {}).get("metric")), "metric")
    header = ["job", "name", "status", "trained", "evaluated", "split", metric, "loss", "checkpoint step"]
    rows = []
    for j in jobs:
        r = j.get("result") or {}
        m = r.get("metrics") or {}
        rows.append([str(j.get("num")), str(j.get("name")), str(j.get("status")), str(r.get("trained_label", "-")),
                     str(r.get("evaluated_label", "-")), str(r.get("split", "-")), _num(m.get(metric)),
                     _num(m.get("loss")), _num(r.get("step"))])
    return header, rows


def eval_matrix(jobs: list[dict]) -> tuple[list[str], list[list[str]]] | None:
    """Trained attention (rows: one per checkpoint) x evaluated attention (columns), as the paper's
    Table 2."""
    records = [j["result"] for j in jobs if j.get("status") == "ok" and (j.get("result") or {}).get("kind") == "eval"]
    if not records:
        return None
    metric = records[0].get("metric", "accuracy")
    percent = metric == "accuracy"

    def row_of(r: dict) -> str:
        run = shown_path(Path(str(r.get("checkpoint"))).parent.parent)  # <run>/checkpoints/step-N.pt
        return f"{r.get('trained_label')} ({run}, step {r.get('step')})"

    rows = list(dict.fromkeys(row_of(r) for r in records))
    columns = list(dict.fromkeys(str(r.get("evaluated_label")) for r in records))
    cells: dict[tuple[str, str], str] = {}
    for r in records:
        value = (r.get("metrics") or {}).get(metric)
        cells[(row_of(r), str(r.get("evaluated_label")))] = \
            "-" if value is None else (f"{100 * value:.1f}" if percent else f"{value:.4g}")
    header = [f"train \\ eval ({metric}{' %' if percent else ''}, {records[0].get('split')})", *columns]
    return header, [[row, *(cells.get((row, c), "-") for c in columns)] for row in rows]


def plain(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in (header, *rows)]


def build_report(sweep_dir: Path, command: str) -> dict:
    jobs = read_jobs(sweep_dir)
    kind = "eval" if command == "eval" else "train"
    header, rows = (eval_rows if kind == "eval" else train_rows)(jobs)
    failed = [{"num": j.get("num"), "name": j.get("name"), "error": j.get("error")} for j in jobs
              if j.get("status") != "ok"]
    report: dict[str, Any] = {"sweep": shown_path(sweep_dir), "command": f"reformer {command}", "jobs": jobs,
                              "failed": failed, "table": {"header": header, "rows": rows}}
    if kind == "eval":
        report["records"] = [j["result"] for j in jobs if j.get("status") == "ok" and j.get("result")]
        matrix = eval_matrix(jobs)
        report["matrix"] = None if matrix is None else {"header": matrix[0], "rows": matrix[1]}
    return report


def report_markdown(report: dict) -> str:
    n, failed = len(report["jobs"]), len(report["failed"])
    lines = [f"# Sweep `{report['sweep']}`", "",
             f"`{report['command']} -m`: {n} job(s), {n - failed} ok, {failed} failed. Each job's folder is"
             " `<sweep>/<job>/`; `sweep.json` holds the same table and every job's record.", ""]
    lines += markdown_table(report["table"]["header"], report["table"]["rows"], escape_bars)
    if report.get("matrix"):
        lines += ["", "## Trained x evaluated attention", ""]
        lines += markdown_table(report["matrix"]["header"], report["matrix"]["rows"], escape_bars)
    if report["failed"]:
        lines += ["", "## Failed jobs", ""]
        lines += [f"* job {f['num']} ({f['name']}): {f['error']}" for f in report["failed"]]
    return "\n".join(lines) + "\n"


def write_report(sweep_dir: Path, command: str, out: Any = None) -> dict:
    """Write sweep.json and sweep.md into `sweep_dir`, print the table; returns the report."""
    global _last_report
    report = build_report(Path(sweep_dir), command)
    write_json_atomic(Path(sweep_dir) / SWEEP_JSON, report)
    write_text_atomic(Path(sweep_dir) / SWEEP_MD, report_markdown(report))
    out = out or sys.stdout
    n, failed = len(report["jobs"]), len(report["failed"])
    out.write(f"\nsweep {report['sweep']}: {n} job(s), {n - failed} ok, {failed} failed"
              f" ({SWEEP_MD} and {SWEEP_JSON} there)\n")
    out.write("\n".join(plain(report["table"]["header"], report["table"]["rows"])) + "\n")
    if report.get("matrix"):
        out.write("\n" + "\n".join(plain(report["matrix"]["header"], report["matrix"]["rows"])) + "\n")
    out.flush()
    _last_report = report
    return report


def exit_code() -> int:
    """After a sweep: 1 (with one line naming the failed jobs) if any job failed, else 0."""
    if not _last_report or not _last_report["failed"]:
        return 0
    failed = _last_report["failed"]
    names = "; ".join(f"job {f['num']} ({f['name']}): {f['error']}" for f in failed)
    sys.stderr.write(one_line(f"error: {len(failed)} of {len(_last_report['jobs'])} jobs failed: {names}") + "\n")
    return 1


class SweepReport:
    """Hydra callback (`hydra.callbacks` in conf/config.yaml and conf/eval.yaml): the sweep table at
    the end of `-m`. Hydra calls every hook; only on_multirun_end does something."""

    def __init__(self, command: str = "run") -> None:
        self.command = command

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        pass

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        pass

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        pass

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        pass

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        pass

    def on_compose_config(self, config: Any, **kwargs: Any) -> None:
        pass

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        write_report(Path(str(config.hydra.sweep.dir)), self.command)
