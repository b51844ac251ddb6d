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
from typing import Any

from ..errors import OneLineParser, UserError, report_and_exit

DATA_TASKS = ("enwik8", "text", "imagenet64")

USAGE = """usage: reformer data prepare task=NAME [task.KEY=VALUE ...] [--source PATH|URL] [--no-verify] [--force]
       reformer data verify task=NAME [task.KEY=VALUE ...]

tasks: enwik8 (downloaded), text (task.path=FILE), imagenet64 (task.variant=oord|chrabaszcz,
task.data_dir=DIR holding the downloaded files). Prepared data goes to task.data_dir (default
$REFORMER_DATA_DIR/<task>, else ${XDG_CACHE_HOME:-~/.cache}/reformer/<task>).
"""


def parser(action: str) -> argparse.ArgumentParser:
    line = USAGE.splitlines()[0 if action == "prepare" else 1]
    p = OneLineParser(prog=f"reformer data {action}", usage=line.replace("usage:", "").strip())
    p.add_argument("overrides", nargs="*", help="task=NAME and task.KEY=VALUE overrides (as for reformer run)")
    if action == "prepare":
        p.add_argument("--source", metavar="PATH|URL", help="enwik8: a downloaded enwik8.zip, the raw enwik8 file, or another URL")
        p.add_argument("--no-verify", action="store_true",
                       help="use a file that is not the official dataset: skip the MD5 check (enwik8) or the"
                            " image counts (imagenet64); the manifest records that they were skipped")
        p.add_argument("--force", action="store_true", help="prepare again even if the folder is already prepared")
    return p


def compose_task(overrides: list[str]) -> Any:
    """The task config `reformer run <overrides>` would get; only task overrides are accepted."""
    names = [o.split("=", 1)[1] for o in overrides if o.startswith("task=")]
    if not names:
        raise UserError(f"name the dataset: reformer data prepare task=NAME (one of: {', '.join(DATA_TASKS)})")
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if "=" not in override or not (key == "task" or key.startswith("task.")):
            raise UserError(f"'{override}': only task=NAME and task.KEY=VALUE overrides are read here")
    if names[-1] not in DATA_TASKS:
        if names[-1] == "synthetic":
            raise UserError("task=synthetic is generated on the fly: it needs no data")
        raise UserError(f"unknown data task '{names[-1]}' (available: {', '.join(DATA_TASKS)})")

    from ..config import validate_task
    from ..hydra_entry import compose

    task = compose("config", list(overrides)).task
    validate_task(task)
    return task


def prepare(args: argparse.Namespace) -> int:
    task = compose_task(args.overrides)
    if args.source is not None and task.name != "enwik8":
        raise UserError(f"--source is for task=enwik8; task={task.name} reads " +
                        ("task.path" if task.name == "text" else "the files in task.data_dir"))
    if task.name == "enwik8":
        from ..data.bytes import prepare_enwik8

        result = prepare_enwik8(task, source=args.source, verify=not args.no_verify, force=args.force)
    elif task.name == "text":
        if args.no_verify:
            raise UserError("--no-verify is for enwik8 and imagenet64: a local text file has no official checksum")
        from ..data.bytes import prepare_text

        result = prepare_text(task, force=args.force)
    else:
        from ..data.imagenet64 import prepare_imagenet64

        result = prepare_imagenet64(task, verify=not args.no_verify, force=args.force)
    print(result.summary())
    return 0


def verify(args: argparse.Namespace) -> int:
    """Re-hash every prepared file against its manifest (what a run start does only up to 2 GiB)."""
    task = compose_task(args.overrides)
    from ..data.manifest import check_split_files

    if task.name == "enwik8":
        from ..data.bytes import load_enwik8 as load
    elif task.name == "text":
        from ..data.bytes import load_text as load
    else:
        from ..data.imagenet64 import load_imagenet64 as load
    from ..data.paths import prepare_command

    folder, manifest = load(task)
    check_split_files(folder, manifest, full=True, fix=f"rerun `{prepare_command(task, '--force')}`", progress=True)
    source = manifest["source"]
    if task.name == "text":  # the user's own file: nothing official to check it against
        official = f"source {source.get('origin')} (your own file: no official checksum exists for it)"
    elif source.get("verified"):
        official = "official checks passed"
    else:
        official = f"official checks were SKIPPED at prepare ({', '.join(source.get('checks_skipped', []))})"
    splits = ", ".join(f"{name} {entry['bytes']:,} B" for name, entry in manifest["splits"].items())
    print(f"ok: {folder}: {splits}; every sha256 matches the manifest; data sha256"
          f" {manifest['data_sha256'][:16]}; {official}")
    return 0


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
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
