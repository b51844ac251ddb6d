"""`reformer data prepare|verify task=NAME [task.KEY=VALUE ...] [options]`: datasets on disk.

    reformer data prepare task=enwik8                      download, check the MD5, split 90M/5M/5M
    reformer data prepare task=enwik8 --source enwik8.zip  an already downloaded zip (or raw file, or URL)
    reformer data prepare task=text task.path=corpus.txt   any local file, split by fraction
    reformer data prepare task=imagenet64 task.variant=oord task.data_dir=DIR
    reformer data verify task=enwik8                       re-hash the prepared files against the manifest

The task is composed exactly as `reformer run` composes it (same config files and overrides), so
the folder `prepare` fills is the folder `run` reads. A second `prepare` with a matching manifest
does nothing (`--force` redoes it).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from ..errors import OneLineParser, UserError, report_and_exit
from ..tasks import find_task, task_specs

COMMANDS = """usage: reformer data prepare task=NAME [task.KEY=VALUE ...] [--source PATH|URL] [--no-verify] [--force]
       reformer data verify task=NAME [task.KEY=VALUE ...]
"""


def data_tasks() -> list[Any]:
    """The specs of the registered tasks whose data is prepared on disk."""
    return [spec for spec in task_specs() if spec.prepared]


def usage() -> str:
    tasks = ", ".join(spec.data_usage for spec in data_tasks())
    text = (f"tasks: {tasks}. Prepared data goes to task.data_dir (default $REFORMER_DATA_DIR/<task>, else"
            " ${XDG_CACHE_HOME:-~/.cache}/reformer/<task>).")
    return f"{COMMANDS}\n{textwrap.fill(text, width=93)}\n"


def parser(action: str) -> argparse.ArgumentParser:
    line = COMMANDS.splitlines()[0 if action == "prepare" else 1]
    p = OneLineParser(prog=f"reformer data {action}", usage=line.replace("usage:", "").strip())
    p.add_argument("overrides", nargs="*", help="task=NAME and task.KEY=VALUE overrides (as for reformer run)")
    if action == "prepare":
        p.add_argument("--source", metavar="PATH|URL",
                       help="; ".join(spec.source_help for spec in data_tasks() if spec.source_help))
        checks = " or ".join(spec.official_checks for spec in data_tasks() if spec.official_checks)
        p.add_argument("--no-verify", action="store_true",
                       help=f"use a file that is not the official dataset: skip {checks};"
                            " the manifest records that they were skipped")
        p.add_argument("--force", action="store_true", help="prepare again even if the folder is already prepared")
    return p


def compose_task(overrides: list[str]) -> Any:
    """The task config `reformer run <overrides>` would get; only task overrides are accepted."""
    names = [o.split("=", 1)[1] for o in overrides if o.startswith("task=")]
    available = ", ".join(spec.name for spec in data_tasks())
    if not names:
        raise UserError(f"name the dataset: reformer data prepare task=NAME (one of: {available})")
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if "=" not in override or not (key == "task" or key.startswith("task.")):
            raise UserError(f"'{override}': only task=NAME and task.KEY=VALUE overrides are read here")
    spec = find_task(names[-1])
    if spec is not None and not spec.prepared:
        raise UserError(f"task={spec.name} is generated on the fly: it needs no data")
    if spec is None:
        raise UserError(f"unknown data task '{names[-1]}' (available: {available})")

    from ..config import validate_task
    from ..hydra_entry import compose

    task = compose("config", list(overrides)).task
    validate_task(task)
    return task


def prepare(args: argparse.Namespace) -> int:
    """Every argument is checked before the folder is locked and anything in it is touched; a
    second `prepare` into the same folder meanwhile is refused in one line (run_folder.hold)."""
    from ..data.files import make_folder, remove_empty
    from ..data.paths import prepared_dir
    from ..run_folder import LOCK_FILE, hold

    task = compose_task(args.overrides)
    spec = find_task(task.name)
    spec.refuse_options(args.source, not args.no_verify)
    folder = prepared_dir(task)
    created = make_folder(folder)
    try:
        with hold(folder, what="data folder"):
            result = spec.prepare(task, source=args.source, verify=not args.no_verify, force=args.force)
    except BaseException:
        if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            (folder / LOCK_FILE).unlink()  # a failed first prepare leaves no folder behind
            remove_empty(created)
        raise
    print(result.summary())
    return 0


def verify(args: argparse.Namespace) -> int:
    """Re-hash every prepared file against its manifest (what a run start does only up to 2 GiB)."""
    task = compose_task(args.overrides)
    from ..data.manifest import check_split_files
    from ..data.paths import prepare_command

    spec = find_task(task.name)
    folder, manifest = spec.load(task)
    check_split_files(folder, manifest, full=True, fix=f"rerun `{prepare_command(task, '--force')}`", progress=True)
    official = spec.provenance(manifest)
    splits = ", ".join(f"{name} {entry['bytes']:,} B" for name, entry in manifest["splits"].items())
    print(f"ok: {folder}: {splits}; every sha256 matches the manifest; data sha256"
          f" {manifest['data_sha256'][:16]}; {official}")
    return 0


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return 0
    action, rest = args[0], args[1:]
    if action not in ("prepare", "verify"):
        report_and_exit(f"unknown data action '{action}' (actions: prepare, verify)")
    parsed = parser(action).parse_intermixed_args(rest)
    try:
        return prepare(parsed) if action == "prepare" else verify(parsed)
    except UserError as exc:
        report_and_exit(str(exc))
    except OSError as exc:  # an unwritable folder, a full disk
        report_and_exit(f"{exc.filename or 'data'}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        report_and_exit("interrupted: nothing half-written is trusted; run the same command again", code=130)
    return 0
