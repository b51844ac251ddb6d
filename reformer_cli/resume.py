"""Resuming: which run folder `resume=auto` continues, and which checkpoint in it.

Hydra gives every invocation a new timestamped folder. So that re-running the same command with
`resume=auto` continues where the interrupted run stopped, `reformer run` looks, before Hydra
starts, for the newest folder under `outputs/<task>/` that holds a checkpoint and whose
config.yaml equals this config up to options that do not change what is computed (`INERT`:
progress display, logging, evaluation and checkpoint cadence, the run's name; `choose_run`),
and points `hydra.run.dir` at it (`choose_folder`, asked by prepared_run.py). When there is none but an
unfinished run differs only in options that do change the computation, `resume=auto` does not
silently start over: it names that run and the differing keys, and the user chooses
(`resume=<folder>` continues it anyway; without `resume=auto` a new run starts). Multirun sweeps
resume per job inside a fixed `hydra.sweep.dir`.

Inside a folder the newest checkpoint that loads and holds only finite values is used
(`load_usable_checkpoint`); a truncated or non-finite newer one is skipped with a message, and so
is one that would unpack to more than the model can need (read from its zip directory, unread) or
whose step is not an integer >= 0.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from .errors import UserError
from .records import (CHECKPOINT_DIR, UNPACK_SLACK, OversizedCheckpoint, checkpoint_type_problem, find_checkpoint, list_checkpoints,
                      load_checkpoint)
from .yaml_guard import UnsafeYaml, check_yaml_file

OUTPUTS = Path("outputs")

# Options that do not change the weights a run computes: a run differing only in these continues.
INERT = (
    "resume", "run_name", "logger", "optimized_metric",
    "trainer.progress", "trainer.log_every", "trainer.ckpt_every", "trainer.keep_last", "trainer.keep_best",
    "trainer.eval_every", "trainer.eval_batches", "trainer.eval_batch_size",
    "trainer.final_eval_batches", "trainer.final_splits",
)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of a nested dict (lists are values)."""
    if not isinstance(cfg, dict):
        return {prefix.rstrip("."): cfg}
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def is_inert(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in INERT)


def differing_keys(a: dict, b: dict) -> list[str]:
    """Dotted keys whose values differ between two configs (present in one only included)."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, KeyError) != fb.get(k, KeyError))


@dataclass
class Candidate:
    folder: Path
    config: dict
    differs: list[str]  # keys that change the computation
    inert: list[str]  # keys that do not
    completed: bool
    step: int  # its newest checkpoint's step


def candidates(cfg: dict, root: Path = OUTPUTS) -> list[Candidate]:
    """The run folders under root/<task>/ holding a checkpoint and a readable config, newest first."""
    folder = Path(root) / str(cfg["task"]["name"])
    if not folder.is_dir():
        return []
    found = []
    for run_dir in sorted((p for p in folder.iterdir() if p.is_dir()), reverse=True):
        saved = run_dir / "config.yaml"
        checkpoints = list_checkpoints(run_dir)
        if not saved.is_file() or not checkpoints:
            continue
        try:
            check_yaml_file(saved)  # an alias bomb would hang OmegaConf.load
        except UnsafeYaml as exc:
            sys.stderr.write(f"resume=auto: skipping {run_dir}: {exc}\n")
            continue
        from omegaconf import OmegaConf  # lazy: the GPU machine's benchmarks import this module without omegaconf

        try:
            previous = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
        except Exception:
            continue
        keys = differing_keys(previous, cfg)
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            summary = None
        if summary is not None and not isinstance(summary, dict):
            sys.stderr.write(f"resume=auto: {run_dir / 'summary.json'} is not a JSON object; taking the run as unfinished\n")
        completed = isinstance(summary, dict) and summary.get("status") in ("completed", "early_stopped")
        found.append(Candidate(run_dir, previous, [k for k in keys if not is_inert(k)],
                               [k for k in keys if is_inert(k)], completed, checkpoints[-1][0]))
    return found


def _shown(value: Any) -> str:
    return "unset" if value is KeyError else json.dumps(value, default=str)


def choose_run(cfg: dict, root: Path = OUTPUTS) -> tuple[Path | None, str | None]:
    """`resume=auto`: (the folder to continue, a line saying why) or (None, None) to start fresh.
    UserError when the newest unfinished run differs in what it computes (the user chooses)."""
    found = candidates(cfg, root)
    match = next((c for c in found if not c.differs), None)
    if match is not None:
        note = None
        if match.inert:
            note = (f"resume=auto: continuing {match.folder} (it differs only in {', '.join(match.inert)},"
                    " which do not change what is computed)")
        return match.folder, note
    near = next((c for c in found if not c.completed), None)
    if near is None:
        return None, None
    a, b = flatten(cfg), flatten(near.config)
    shown = ", ".join(f"{k} ({_shown(a.get(k, KeyError))} here, {_shown(b.get(k, KeyError))} there)"
                      for k in near.differs[:4])
    more = f" and {len(near.differs) - 4} more" if len(near.differs) > 4 else ""
    raise UserError(
        f"resume=auto: no run of this config to continue; the newest unfinished run, {near.folder} (step"
        f" {near.step}), differs in {shown}{more}: continue it anyway with resume={near.folder}, or start a new"
        " run without resume=auto"
    )


@dataclass(frozen=True)
class ResumeChoice:
    """What `resume=` on the command line decides before Hydra starts: the run folder continued
    (None: the run gets a new folder) and, when it is one that differs in inert options, the line
    that says so."""

    folder: str | None = None  # as `hydra.run.dir` gets it (`resume=<folder>`: as typed)
    note: str | None = None


def choose_folder(requested: str | None, cfg: dict | None, root: Path = OUTPUTS) -> ResumeChoice:
    """The folder `resume=<requested>` continues: `resume=<run folder>` that folder, `resume=auto`
    the one `choose_run` finds for the resolved `cfg` (none when it did not compose: Hydra, composing
    it again, reports why). UserError as `choose_run`."""
    if requested in (None, "null"):
        return ResumeChoice()
    if requested != "auto":
        return ResumeChoice(requested) if Path(requested).is_dir() else ResumeChoice()
    if cfg is None:
        return ResumeChoice()
    folder, note = choose_run(cfg, root)
    return ResumeChoice(None if folder is None else str(folder), note)


# ------------------------------------------------------------------------------------ checkpoints


def checkpoint_candidates(target: str | Path) -> list[Path]:
    """The checkpoints `resume=<target>` may continue from, newest first: a file itself, or every
    checkpoint of a run folder."""
    target = Path(target)
    if target.is_dir():
        return [path for _, path in reversed(list_checkpoints(target))]
    found = find_checkpoint(target)
    return [] if found is None else [found]


def checkpoint_problem(saved: Any) -> str | None:
    """Why a loaded checkpoint cannot be continued from (None if it can)."""
    from .finite import all_finite

    if not isinstance(saved, dict) or not {"model", "optimizer", "state"} <= set(saved):
        return "not a training checkpoint"
    wrong = checkpoint_type_problem(saved)
    if wrong is not None:
        return wrong
    step = saved["state"].get("step") if isinstance(saved["state"], dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        # a resumed run would cut metrics.jsonl back to it and name its checkpoints step--N.pt; step 0
        # is a model no step of this project trained (`reformer import hf`)
        return f"its step is not an integer >= 0 ({step!r})"
    if not all_finite([saved["model"], saved["optimizer"]]):
        return "it holds non-finite values"
    return None


def checkpoint_limit(model: Any) -> int:
    """The most bytes a checkpoint of `model` can unpack to: its weights and an optimizer state of
    at most twice their size (Adam), doubled for safety, and `UNPACK_SLACK` for the rest."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    return 4 * weights * 2 + UNPACK_SLACK


def load_usable_checkpoint(paths: list[Path], map_location: Any = "cpu", max_unpacked: int | None = None,
                           doing: str = "resume from") -> tuple[Path, dict, list[tuple[Path, str]]]:
    """(path, contents, skipped) of the first of `paths` (newest first) that loads and holds only
    finite values; `skipped`: the newer ones passed over and why. UserError if none is usable
    (`doing`: what it was for, `evaluate` for `reformer eval`).
    `max_unpacked` (bytes; `checkpoint_limit`): a larger checkpoint is skipped unread."""
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        try:
            saved = load_checkpoint(path, map_location=map_location, max_unpacked=max_unpacked)
        except OversizedCheckpoint as exc:
            skipped.append((path, exc.why))
            continue
        except UserError:
            skipped.append((path, "it cannot be read: truncated or corrupted"))
            continue
        why = checkpoint_problem(saved)
        if why is None:
            return path, saved, skipped
        skipped.append((path, why))
    raise no_usable_checkpoint(skipped, doing)


def no_usable_checkpoint(skipped: list[tuple[Path, str]], doing: str) -> UserError:
    """The one line for checkpoints none of which is usable: a file the user named that is not a
    run's checkpoint (`resume=/etc/passwd`) is said to be neither; a run's checkpoints are listed."""
    if len(skipped) == 1 and skipped[0][0].parent.name != CHECKPOINT_DIR:
        path, why = skipped[0]
        return UserError(f"cannot {doing} {path}: it is not a run folder, nor a usable checkpoint ({why})")
    listed = "; ".join(f"{p.name}: {why}" for p, why in skipped)
    advice = "; delete them to start over" if doing == "resume from" else ""
    return UserError(f"no usable checkpoint to {doing} ({listed}){advice}")
