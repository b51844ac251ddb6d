"""Hashing and staged output files: a prepared folder never holds a half-written file under its
final name. Outputs are written to a temp file in the same folder and renamed only when the whole
preparation has succeeded and been verified; the manifest is renamed last."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable

CHUNK = 8 << 20  # 8 MiB reads


def progress_bar(total: int | None, desc: str, unit: str = "B") -> Any:
    """A tqdm bar on stderr (bytes scaled as KB/MB/GB), hidden when stderr is not a terminal."""
    from tqdm import tqdm

    scale = unit == "B"
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000,
                disable=None, leave=False, dynamic_ncols=True)


def sha256_file(path: Path, desc: str | None = None) -> str:
    """sha256 of a file, read in chunks, with a byte bar when `desc` is given."""
    digest = hashlib.sha256()
    size = Path(path).stat().st_size
    bar = progress_bar(size, desc) if desc else None
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return digest.hexdigest()


def make_folder(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns the ones created, innermost first."""
    created, current = [], Path(folder)
    while not current.exists():
        created.append(current)
        current = current.parent
    Path(folder).mkdir(parents=True, exist_ok=True)
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove these folders (innermost first) while they are empty: what a failed step created and
    left with nothing in it."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): keep it and everything above it
            return


def read_chunks(stream: BinaryIO, n_bytes: int) -> Iterable[bytes]:
    """Exactly `n_bytes` from `stream` in chunks; stops early only if the stream ends."""
    left = n_bytes
    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


class StagedFile:
    """A file written under a temp name beside `path`, hashed as it is written, and renamed onto
    `path` by `commit()`; `discard()` (or an exception in a `with` block) deletes it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.tmp = Path(tmp)
        self.file = os.fdopen(fd, "wb")
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes | memoryview) -> None:
        self.file.write(data)
        self.sha256.update(data)
        self.bytes += len(data)

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()

    def commit(self) -> None:
        self.close()
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes 0600; data is as readable as any file
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "StagedFile":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with StagedFile(path) as out:
        out.write(data)
        out.commit()


def remove_stale_temps(folder: Path, names: Iterable[str]) -> None:
    """Delete temp files an interrupted earlier preparation left behind (never trusted anyway)."""
    if not folder.is_dir():
        return
    for name in names:
        for stale in folder.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
