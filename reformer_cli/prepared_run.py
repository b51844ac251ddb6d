"""A run prepared once, before Hydra starts: its config, its folder and lock, what `resume=`
decides, and the overrides the user typed.

`reformer run` and `reformer eval` hand their arguments to `PreparedRun.prepare`, which composes
the config once (hydra_entry.compose, with Hydra's own node: it names the folder), lets
`resume=auto` choose the run folder to continue (resume.py), moves every process of a torchrun
launch into one folder (distributed.py), and checks the config (a rejected one leaves no folder
behind). `held()` then creates the folder (a folder left to Hydra's pattern gets the run's name
appended and a fresh name: `..._synthetic-lsh-4-standard-seed0-2` when that one exists), takes its
lock (run_folder.py) before Hydra writes anything into it, and yields the arguments Hydra gets;
a command that fails leaves no folder it created that holds no record. Inside Hydra, `job(cfg)`
is the prepared run of the job that runs: the run itself, or for each job of a sweep (`-m`) its
own, from Hydra's config and folder.

Commands that write no run (`--cfg`, `--help`, ...) and command lines that do not compose are
left to Hydra as they are (it reports their errors). Nothing here imports hydra, omegaconf or
torch at import time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from . import run_folder
from .resume import ResumeChoice, choose_folder
from .sweeps import MULTIRUN_FLAGS


@dataclass
class PreparedRun:
    config_name: str  # "config" (`reformer run`) or "eval" (`reformer eval`)
    arguments: list[str]  # what Hydra is given (`held` adds the folder it claims)
    overrides: tuple[str, ...] = ()  # the overrides the user typed (a sweep's as typed: `seed=0,1`)
    config: Any = None  # the job's config, composed once (None: left to Hydra, or a sweep)
    folder: Path | None = None  # the run (or sweep) folder; None: left to Hydra
    fresh_name: bool = False  # `folder` follows Hydra's pattern: `held` claims a fresh name beside it
    multirun: bool = False
    resume: ResumeChoice = ResumeChoice()
    validated: bool = False  # `config` passed the command's check

    # ---------------------------------------------------------------------------- before Hydra

    @classmethod
    def prepare(cls, args: list[str], config_name: str = "config",
                check: Callable[[Any], None] | None = None) -> PreparedRun:
        """The run `args` describe, composed once and checked with `check`; UserError (one line)
        for a config, a `resume=auto` choice or a torchrun launch that is refused."""
        from .hydra_entry import check_config_files, check_installed, config_source, full_error_wanted

        check_installed(config_name)
        config_dir, name, plain = config_source(args)
        run = cls(config_name, list(args), tuple(a for a in plain if not a.startswith("-")))
        composed = None
        if config_name == "config":  # `reformer run`
            composed = run._choose_resumed_folder()
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                from .distributed import torchrun_arguments

                run.arguments = torchrun_arguments(run.arguments)
        if config_dir is not None or name is not None:  # a user's config files: checked before Hydra loads them
            check_config_files(config_dir, name or config_name)
            config_name = name or config_name
        flags = [a for a in plain if a.startswith("-")]
        if any(f not in MULTIRUN_FLAGS for f in flags):
            return run  # nothing to run (--cfg, --help, ...) or not ours to read: left to Hydra
        run.multirun = bool(flags)
        run._find_folder(composed, config_name, config_dir)
        if check is not None and run.config is not None and not full_error_wanted():
            check(run.config)  # (HYDRA_FULL_ERROR=1: the job checks it, with a traceback)
            run.validated = True
        return run

    def _choose_resumed_folder(self) -> _Composed | None:
        """`resume=auto` / `resume=<run folder>` without `hydra.run.dir` (nor any flag): point
        `hydra.run.dir` at the run to continue (resume.choose_folder; its note is printed).
        Returns what `resume=auto` composed to choose it."""
        from .hydra_entry import argument_value, string_override

        args = self.arguments
        if any(a.startswith("-") for a in args) or argument_value(args, "hydra.run.dir") is not None:
            return None
        requested = argument_value(args, "resume")
        composed = _Composed.of("config", list(self.overrides), None, "hydra.run.dir") if requested == "auto" else None
        self.resume = choose_folder(requested, None if composed is None else composed.resolved())
        if self.resume.note:
            sys.stdout.write(self.resume.note + "\n")
            sys.stdout.flush()
        if self.resume.folder is not None:
            self.arguments = [*args, string_override("hydra.run.dir", self.resume.folder)]
        return composed

    def _find_folder(self, composed: _Composed | None, config_name: str, config_dir: str | None) -> None:
        """The folder `hydra.run.dir` (a sweep: `hydra.sweep.dir`) names: the user's as given, or,
        when Hydra's pattern names it, the pattern composed (with the config, once) and the run's
        name appended; left None if that does not compose or resolve (Hydra, composing it again,
        reports why)."""
        from .hydra_entry import argument_value, without_sweeps

        explicit = argument_value(self.arguments, self.folder_key)
        if explicit is not None and "$" not in explicit:  # the user's folder: nothing to compose for it
            self.folder = Path(explicit)
        else:
            if composed is None:
                overrides = without_sweeps(list(self.overrides)) if self.multirun else list(self.overrides)
                composed = None if overrides is None else _Composed.of(config_name, overrides, config_dir,
                                                                       self.folder_key)
            if composed is None or composed.folder is None:
                return
            self.folder = composed.folder
        if composed is not None and not self.multirun:
            self.config = composed.config
        if explicit is None:
            self.fresh_name = True
            if not self.multirun and config_name == "config":  # a training run; an evaluation has no run name
                label = run_folder.folder_label(_run_name(self.config))
                self.folder = self.folder.with_name(f"{self.folder.name}_{label}")

    @property
    def folder_key(self) -> str:
        return "hydra.sweep.dir" if self.multirun else "hydra.run.dir"

    @property
    def explicit_keys(self) -> set[str]:
        """The keys and config groups the user set (`trainer.lr=1e-3` -> trainer.lr,
        `attention=full` -> attention, `+a.b=1` -> a.b)."""
        return {o.split("=", 1)[0].lstrip("+~") for o in self.overrides}

    @contextlib.contextmanager
    def held(self) -> Iterator[list[str]]:
        """Create the folder (a fresh name for one left to Hydra's pattern) and hold its lock while
        Hydra runs (rank 0 only under torchrun: it holds the shared folder); yields the arguments
        for Hydra. If the block fails and the folder, created here, holds no record, it is removed."""
        if self.folder is None:
            yield self.arguments
            return
        from .hydra_entry import string_override

        arguments = self.arguments
        if self.fresh_name:
            self.folder, created = run_folder.claim_unique(self.folder)
            arguments = [*arguments, string_override(self.folder_key, str(self.folder))]
        else:
            created = run_folder.make_folder(self.folder)
        writer = int(os.environ.get("RANK", "0")) == 0
        with run_folder.claimed(self.folder, created, "sweep folder" if self.multirun else "run folder", writer):
            yield arguments

    # ---------------------------------------------------------------------------- inside Hydra

    def job(self, cfg: Any) -> PreparedRun:
        """The prepared run of the Hydra job running with `cfg` (Hydra's composition): this run,
        with the config composed before Hydra started (Hydra's `cfg` where it was left to Hydra:
        the job checks it); each job of a sweep is its own run."""
        from .hydra_entry import output_dir

        if self.multirun:
            return PreparedRun(self.config_name, self.arguments, self.overrides, config=cfg, folder=output_dir())
        if self.config is None:
            return dataclasses.replace(self, config=cfg, folder=output_dir(), validated=False)
        return dataclasses.replace(self, folder=output_dir())


# ------------------------------------------------------------------------------------ composing


@dataclass
class _Composed:
    """One composition: the job's config, and the folder Hydra's node names for it."""

    config: Any
    folder: Path | None  # None: the folder does not resolve (Hydra, resolving it again, reports why)

    @classmethod
    def of(cls, config_name: str, overrides: list[str], config_dir: str | None, key: str) -> _Composed | None:
        """The config `overrides` compose to, with the folder `key` (hydra.run.dir, hydra.sweep.dir)
        names; None if they do not compose (Hydra, composing them again, reports why)."""
        from omegaconf import OmegaConf, open_dict

        from .hydra_entry import DefaultsLoop, compose

        try:
            cfg = compose(config_name, overrides, hydra_config=True, config_dir=config_dir)
        except DefaultsLoop:
            raise
        except Exception:
            return None
        try:
            folder: Path | None = Path(str(OmegaConf.select(cfg, key, throw_on_missing=True)))
        except Exception:
            folder = None
        with open_dict(cfg):
            del cfg["hydra"]
        return cls(cfg, folder)

    def resolved(self) -> dict | None:
        """The job's config as plain, resolved values (None if it does not resolve)."""
        from omegaconf import OmegaConf

        try:
            return OmegaConf.to_container(self.config, resolve=True)
        except Exception:
            return None


def _run_name(cfg: Any) -> str:
    """The run's name as the trainer logs it (`run_name`, else `synthetic-lsh-4-standard-seed0`)."""
    if cfg.get("run_name"):
        return str(cfg.run_name)
    from .naming import default_run_name

    return default_run_name(cfg)
