"""The one boundary with Hydra: composing a config (`compose`), running a Hydra app with one-line
user errors (`run_hydra`), and reading overrides as Hydra reads them.

`reformer run ...` and `reformer eval ...` hand everything after the command word to a
`@hydra.main` function, so `-m` sweeps, `--cfg job`, `--info`, `-cd` and overrides reach Hydra
untouched. Anything else that needs a config outside a Hydra app (`reformer data`, the reproduce
runner, the batch evaluator, the tests) calls `compose`. User mistakes come out as one line
(`error: ...`, exit 2); bugs keep a traceback; HYDRA_FULL_ERROR=1 restores Hydra's own reports.
What a run needs before Hydra starts (its config composed once and checked, `resume=auto`'s
choice, the run folder claimed and locked so Hydra's own files are covered too) is
prepared_run.py's; `run_hydra` holds that folder while Hydra runs.
Only Hydra's public API is used. Nothing here imports hydra, omegaconf or torch at import time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from . import shipped
from .errors import UserError, one_line, report_and_exit

CONF_DIR = shipped("conf")

# ------------------------------------------------------------------------------------ errors


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


# the config groups a misspelt top-level key is compared with (besides the schema's fields)
CONFIG_GROUPS = ("model", "attention", "layer", "task", "trainer", "logger", "experiment", "hparams_search")


def did_you_mean(name: str, known: list[str] | tuple[str, ...], prefix: str = "") -> str:
    """` (did you mean 'attention'?)` for the known name closest to a misspelt one, else ''."""
    import difflib

    match = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.75)
    if not match or match[0] == name:
        return ""
    return f" (did you mean '{prefix + '.' if prefix else ''}{match[0]}'?)"


def _field_names(object_type: Any) -> list[str]:
    """The fields of a structured config's dataclass (none for anything else)."""
    import dataclasses

    return [f.name for f in dataclasses.fields(object_type)] if dataclasses.is_dataclass(object_type) else []


def describe_hydra_error(exc: BaseException) -> str:
    """One line for a composition / override error, naming the key or option at fault."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    if isinstance(exc, MissingConfigException):
        missing = getattr(exc, "missing_cfg_file", None) or ""
        options = sorted(getattr(exc, "options", None) or [])
        group, _, option = missing.rpartition("/")
        if group == "hydra/sweeper" and option == "optuna":
            return "hparams_search needs the Optuna sweeper: pip install 'reformer-cli[optuna]'"
        if group and options:
            return f"unknown {group} '{option}'{did_you_mean(option, options)} (available: {', '.join(options)})"
        if group:
            return f"unknown {group} '{option}'"
        return _first_line(exc)
    cause = exc.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        key = getattr(cause, "full_key", None) or _first_line(exc)
        prefix, _, leaf = str(key).rpartition(".")
        known = _field_names(getattr(cause, "object_type", None)) + ([] if prefix else list(CONFIG_GROUPS))
        hint = did_you_mean(leaf, known, prefix)
        return f"unknown config key '{shown_key(str(key))}'{hint} (list the keys with: reformer run --cfg job)"
    if isinstance(cause, ValidationError):
        key = getattr(cause, "full_key", None)
        msg = _first_line(cause)
        return f"{key}: {msg}" if key else msg
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override: {one_line(str(exc))}"
    if cause is not None:
        return f"{_first_line(exc)}: {_first_line(cause)}"
    return one_line(str(exc))


def _hydra_errors() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return HydraException, OmegaConfBaseException


# ------------------------------------------------------------------------------------ composing


class DefaultsLoop(UserError):
    """A defaults list that includes its own file (directly or through another one)."""


def compose(config_name: str, overrides: list[str], hydra_config: bool = False,
            config_dir: str | None = None) -> Any:
    """The config `reformer run` (`config_name="config"`) or `reformer eval` (`"eval"`) composes
    from `overrides`, outside a Hydra app; Hydra's own options (`hydra.*`, `hydra/...`) are
    dropped, unless `hydra_config`: then they apply and the result holds the `hydra` node too.
    `config_dir` (a user's `-cd`) is searched before conf/, as Hydra does. A UserError with one
    line if they do not compose."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from . import tasks  # noqa: F401  (importing the package registers the built-in tasks)
    from .config import register_schemas

    register_schemas()
    if not hydra_config:
        overrides = [o for o in overrides if not o.startswith(("hydra.", "hydra/"))]
    primary = CONF_DIR
    if config_dir is not None:
        primary = Path(config_dir).absolute()
        overrides = [*overrides, f"hydra.searchpath=[file://{CONF_DIR}]"]
    try:
        with initialize_config_dir(config_dir=str(primary), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra_config)
    except _hydra_errors() as exc:
        raise UserError(describe_hydra_error(exc)) from None
    except RecursionError:
        raise DefaultsLoop(_loop_message(config_name)) from None


def _loop_message(config_name: str) -> str:
    return (f"config '{config_name}': its defaults list includes itself (directly or through another"
            " config file); remove that entry")


_CONFIG_DIR_FLAGS, _CONFIG_NAME_FLAGS = ("-cd", "--config-dir"), ("-cn", "--config-name")


def config_source(args: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(the `-cd/--config-dir` folder, the `-cn/--config-name` name, the other arguments)."""
    config_dir = name = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        if flag in _CONFIG_DIR_FLAGS + _CONFIG_NAME_FLAGS:
            if not eq:
                if i + 1 >= len(args):  # Hydra reports the missing value
                    rest.append(arg)
                    break
                value, i = args[i + 1], i + 1
            if flag in _CONFIG_DIR_FLAGS:
                config_dir = value
            else:
                name = value
        else:
            rest.append(arg)
        i += 1
    return config_dir, name, rest


MAX_CONFIG_FILES = 1000


def check_config_files(config_dir: str | None, config_name: str) -> None:
    """The YAML files a `-cd` folder holds (and the primary config, if conf/ has it), checked before
    Hydra loads them (yaml_guard: invalid YAML and alias bombs are one line)."""
    from .yaml_guard import check_yaml_file

    files = []
    if config_dir is not None and Path(config_dir).is_dir():
        files = sorted(Path(config_dir).rglob("*.yaml"))[:MAX_CONFIG_FILES]
    shipped_primary = CONF_DIR / f"{config_name}.yaml"
    if shipped_primary.is_file():
        files.append(shipped_primary)
    for path in files:
        check_yaml_file(path)


# ------------------------------------------------------------------------------------ a Hydra app


def exit_on_user_error(task_function: Callable[[Any], Any], full_error: bool = False) -> Callable[[Any], Any]:
    """Wrap a Hydra task so a UserError exits with one line (Hydra would log the job's overrides
    and a traceback first); `full_error` (the user's HYDRA_FULL_ERROR=1) lets it through."""

    def wrapped(cfg: Any) -> Any:
        from .sweeps import in_sweep, run_sweep_job

        if in_sweep():  # a failing job is reported and recorded, and the sweep goes on
            return run_sweep_job(task_function, cfg, full_error)
        from .memory_estimate import allocation_failure, is_allocation_failure

        try:
            return task_function(cfg)
        except UserError as exc:
            if full_error:
                raise
            report_and_exit(str(exc), exc.exit_code)
        except (RuntimeError, MemoryError) as exc:
            if full_error or not is_allocation_failure(exc):
                raise
            report_and_exit(allocation_failure(cfg))

    wrapped.__name__ = getattr(task_function, "__name__", "task")
    wrapped.__module__ = getattr(task_function, "__module__", __name__)
    return wrapped


@contextlib.contextmanager
def _hydra_raises(argv: list[str]) -> Iterator[None]:
    """`sys.argv` set to `argv`, and HYDRA_FULL_ERROR=1: Hydra's documented switch that makes it
    raise errors instead of printing its own multi-line report (both restored afterwards)."""
    saved_argv, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = argv
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env


def check_installed(config_name: str) -> None:
    """UserError when conf/<config_name>.yaml is missing (an incomplete installation)."""
    if not (CONF_DIR / f"{config_name}.yaml").is_file():
        raise UserError(
            f"config folder {CONF_DIR} not found: the installation is incomplete; reinstall reformer"
            " (`pip install .` or `make install` in a clone of the repository)"
        )


def full_error_wanted() -> bool:
    """The user's HYDRA_FULL_ERROR=1: errors keep their tracebacks, as in Hydra."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def run_hydra(task_function: Callable[[Any], Any], config_name: str, args: list[str], prog: str,
              held: Callable[[], ContextManager[list[str]]] | None = None) -> None:
    """Run `task_function` as a Hydra app over `conf/<config_name>.yaml` with `args`. `held` (a
    prepared run's, prepared_run.py) claims and locks the run folder before Hydra starts and holds
    it while Hydra runs; it yields the arguments Hydra gets (`args` with the folder it claimed)."""
    try:
        check_installed(config_name)
    except UserError as exc:
        report_and_exit(str(exc))
    import hydra

    from . import tasks  # noqa: F401  (importing the package registers the built-in tasks)
    from .config import register_schemas

    register_schemas()
    full_error = full_error_wanted()
    started: list[bool] = []
    job = exit_on_user_error(task_function, full_error)

    def task(cfg: Any) -> Any:
        from .objective import check_objective, objective, sweeper_direction

        started.append(True)
        metric = cfg.get("optimized_metric")
        check_objective(metric, sweeper_direction())
        return objective(metric, job(cfg))  # a sweeper that optimises gets the metric (sweep.json the summary)

    task.__name__, task.__module__ = job.__name__, job.__module__
    main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(task)
    try:
        with held() if held is not None else contextlib.nullcontext(args) as args:
            with _hydra_raises([prog, *args]):
                main()
    except (UserError, *_hydra_errors()) as exc:
        if full_error:
            raise
        if isinstance(exc, UserError):
            report_and_exit(str(exc), exc.exit_code)
        report_and_exit(describe_hydra_error(exc))
    except RecursionError:
        if full_error or started:
            raise
        report_and_exit(_loop_message(config_source(args)[1] or config_name))
    except ValueError as exc:
        # Hydra's own argument checks (e.g. `-m` together with `--cfg`), before any job; a
        # ValueError from inside a job is a bug and keeps its traceback.
        if full_error or started:
            raise
        report_and_exit(str(exc))
    except OSError as exc:
        # Hydra writing its own files (.hydra/, the log) into a folder that refuses them, or looking
        # up a config group file named after an override's key that is too long for a file name
        if full_error or started:
            raise
        long_key = _too_long_key(args) if exc.errno == errno.ENAMETOOLONG else None
        if long_key is not None:
            report_and_exit(f"unknown config key '{shown_key(long_key)}': too long for any key or option"
                            " (list the keys with: reformer run --cfg job)")
        report_and_exit(f"cannot write {shown_key(str(exc.filename or 'the run folder'))}: {exc.strerror or exc}")


NAME_MAX = 255  # the longest file name; a key or option that long cannot name a config file


def _too_long_key(args: list[str]) -> str | None:
    """The first override key (`+a.b=...` -> a.b) with a part longer than any file name, or None."""
    for arg in args:
        key = arg.split("=", 1)[0].lstrip("+~")
        if not arg.startswith("-") and any(len(part) > NAME_MAX for part in re.split(r"[./]", key)):
            return key
    return None


SHOWN_KEY = 80  # the most characters of a key (or path) an error line echoes


def shown_key(key: str) -> str:
    """`key`, or its first SHOWN_KEY characters and its length when it is longer."""
    return key if len(key) <= SHOWN_KEY else f"{key[:SHOWN_KEY]}... ({len(key):,} characters)"


def group_listing(groups: tuple[str, ...] | None = None) -> str:
    """`  group:      option, option` lines for the config groups in conf/ (for --help texts)."""
    lines = []
    for folder in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"):
        if groups is None or folder.name in groups:
            options = sorted(f.stem for f in folder.glob("*.yaml"))
            lines.append(f"  {folder.name + ':':12s}{', '.join(options) or '(none yet)'}")
    return "\n".join(lines)


def output_dir() -> Path:
    """The current Hydra job's output folder."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


# ------------------------------------------------------------------------------------ overrides


def argument_value(args: list[str], key: str) -> str | None:
    """The value of the first `key=value` among `args` as Hydra reads it (quotes and escapes
    removed: `hydra.run.dir='a b'` is the folder `a b`), or None."""
    for arg in args:
        if arg.startswith(f"{key}="):
            return _as_hydra_reads(arg.split("=", 1)[1])
    return None


def _parsed_string(value: str) -> str | None:
    """The string Hydra's override parser makes of `value`, or None if it is not one string."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_override(f"key={value}").value()
    except Exception:
        return None
    return parsed if isinstance(parsed, str) else None


def _as_hydra_reads(value: str) -> str:
    if not any(c in value for c in "'\\\""):  # nothing quoted or escaped: as given
        return value
    parsed = _parsed_string(value)
    return value if parsed is None else parsed


def without_sweeps(overrides: list[str]) -> list[str] | None:
    """The overrides a multirun's base config is composed from (sweeps left out, as Hydra does);
    None if they do not parse (Hydra then reports why)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return None
    return [o.input_line for o in parsed if not o.is_sweep_override()]


def string_override(key: str, value: str) -> str:
    """`key=value` written so that Hydra reads `value` back exactly (quoted when it must be)."""
    for written in (value, f"'{value}'", f'"{value}"'):
        if _parsed_string(written) == value:
            return f"{key}={written}"
    return f"{key}={value}"
