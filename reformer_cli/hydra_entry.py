"""The bridge between `reformer <command>` and Hydra.

`reformer run ...` rewrites `sys.argv` and calls a `@hydra.main` function, so everything after
`run` reaches Hydra untouched: `-m` sweeps, `--cfg job`, `--info`, `-cd`, overrides
(notes/ecosystem.md a.2). Hydra's own error reporting prints several lines and a hint about
HYDRA_FULL_ERROR; user mistakes are reported here as one line instead (`error: ...`, exit 2).
Bugs in this program keep Hydra's traceback. HYDRA_FULL_ERROR=1 restores Hydra's behaviour.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from .errors import UserError, one_line, report_and_exit

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def describe_hydra_error(exc: BaseException) -> str:
    """One line for a composition / override error, naming the key or option at fault."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    if isinstance(exc, MissingConfigException):
        missing = getattr(exc, "missing_cfg_file", None) or ""
        options = sorted(getattr(exc, "options", None) or [])
        group, _, option = missing.rpartition("/")
        if group and options:
            return f"unknown {group} '{option}' (available: {', '.join(options)})"
        if group:
            return f"unknown {group} '{option}'"
        return _first_line(exc)
    cause = exc.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        key = getattr(cause, "full_key", None) or _first_line(exc)
        return f"unknown config key '{key}' (list the keys with: reformer run --cfg job)"
    if isinstance(cause, ValidationError):
        key = getattr(cause, "full_key", None)
        msg = _first_line(cause)
        return f"{key}: {msg}" if key else msg
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override: {one_line(str(exc))}"
    if cause is not None:
        return f"{_first_line(exc)}: {_first_line(cause)}"
    return one_line(str(exc))


def _report(func: Callable[[], Any], original: Callable[[Callable[[], Any]], Any]) -> Any:
    """Run `func` under Hydra's reporter; user mistakes come out as one line instead."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user_errors = (UserError, HydraException, OmegaConfBaseException)
    caught: list[BaseException] = []

    def guarded() -> Any:
        try:
            return func()
        except user_errors as exc:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            caught.append(exc)
            return None

    result = original(guarded)  # anything else is a bug: Hydra prints its trimmed traceback
    if caught:
        exc = caught[0]
        report_and_exit(str(exc) if isinstance(exc, UserError) else describe_hydra_error(exc))
    return result


def _install_one_line_errors() -> None:
    """Route Hydra's top-level error reporting through `_report` (idempotent)."""
    import hydra._internal.utils as hydra_utils

    original = getattr(hydra_utils, "_reformer_original_run_and_report", None)
    if original is None:
        original = hydra_utils.run_and_report
        hydra_utils._reformer_original_run_and_report = original
    hydra_utils.run_and_report = lambda func: _report(func, original)


def exit_on_user_error(task_function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a Hydra task so a UserError exits with one line (Hydra would log the job's overrides
    and a traceback first)."""

    def wrapped(cfg: Any) -> Any:
        try:
            return task_function(cfg)
        except UserError as exc:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            report_and_exit(str(exc))

    wrapped.__name__ = getattr(task_function, "__name__", "task")
    wrapped.__module__ = getattr(task_function, "__module__", __name__)
    return wrapped


def run_hydra(task_function: Callable[[Any], Any], config_name: str, args: list[str], prog: str) -> None:
    """Run `task_function` as a Hydra app over `conf/<config_name>.yaml` with `args`."""
    if not (CONF_DIR / f"{config_name}.yaml").is_file():
        report_and_exit(
            f"config folder {CONF_DIR} not found: install from a clone of the repository with"
            " `make install` (an editable install)"
        )
    import hydra

    from .config import register_schemas

    register_schemas()
    _install_one_line_errors()
    main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(
        exit_on_user_error(task_function)
    )
    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        main()
    except ValueError as exc:
        # Hydra's own argument checks (e.g. `-m` together with `--cfg`); errors inside the job go
        # through the reporter above and never arrive here.
        report_and_exit(str(exc))
    finally:
        sys.argv = saved


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
