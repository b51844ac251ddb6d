"""`--pack FILE.tar.gz`: what another machine needs to continue a reproduction in one archive:
the profile's records and the folders of its unfinished training runs, each with its newest
checkpoint only. `tar xzf` it in the same working folder there, then run the same command."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from ..errors import UserError
from ..records import check_writable, list_checkpoints, write_error


def check_path(path: Path) -> None:
    """UserError (one line) unless the archive can be written at `path`: checked before any step
    runs, so that a reproduction does not end, hours later, failing to pack. A folder is refused
    (a temp file beside it would land in its parent, `/tmp` -> `/.tmp.tmp`), and so is a folder
    that does not exist."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--pack {path}: it is a folder; give the archive's file name (FILE.tar.gz)")
    if not path.parent.is_dir():
        raise UserError(f"--pack {path}: the folder {path.parent} does not exist")
    check_writable(path)


def pack(path: Path, record_folders: list[Path], run_folders: list[Path], base: Path) -> int:
    """Write the archive (atomically), names relative to `base`; returns how many files it holds."""

    def arcname(p: Path) -> str:
        name = os.path.relpath(p.resolve(), base.resolve())
        if name.startswith(".."):
            raise UserError(f"--pack: {p} is outside the working folder {base}")
        return name

    files: list[Path] = []
    for folder in record_folders:
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file())
    for folder in run_folders:
        keep = {p for _, p in list_checkpoints(folder)[-1:]}
        files += sorted(p for p in folder.rglob("*") if p.is_file() and (p.suffix != ".pt" or p in keep))
    check_path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for f in files:
                tar.add(f, arcname=arcname(f), recursive=False)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None
    return len(files)
