"""`--pack FILE.tar.gz`: what another machine needs to continue a reproduction in one archive:
the profile's records and the folders of its unfinished training runs, each with its newest
checkpoint only. `tar xzf` it in the same working folder there, then run the same command."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from ..errors import UserError
from ..records import list_checkpoints


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=arcname(f), recursive=False)
    tmp.replace(path)
    return len(files)
