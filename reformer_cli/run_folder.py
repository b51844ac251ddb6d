"""One writer per run folder: the folder's lock, unique folder names, and leftovers.

* `hold(folder)`: an exclusive `flock` on `<folder>/.lock`, taken before anything is written into
  the folder and held until the run ends (the kernel releases it when the process dies, even by
  `kill -9`). A second process is refused with one line naming the holder's pid. Within one
  process the lock is reentrant: `reformer run` takes it before Hydra writes its files, the
  trainer again around training.
* `claim_unique(base)`: a new folder named `base`, or `base-2`, `base-3`, ... when that exists
  (created with an exclusive mkdir: two runs started in the same second get two folders).
* `claimed(folder, created)`: a folder made for a command held (locked) while it runs, and removed
  if the command fails before the run records anything there.
* `folder_label(name)`: a run's name made safe as part of a folder name.
* `remove_orphaned_temps(folder)`: the temp files of atomic writes a killed run left behind.
* `holds_records(folder)`: whether a run wrote anything of its own there (a rejected config's
  folder holds none and is removed).
* `check_paths(folder)`: before anything is written, a folder where a path the run or Hydra writes
  is a symbolic link (or `checkpoints`, `wandb` or `tensorboard` is not a folder) is refused in one line: a link there would
  make a run overwrite a file elsewhere (`ln -s ~/notes.txt run/.lock`).

Locks are advisory `flock`s (Linux, macOS); the lock file itself stays, empty of meaning once
its holder is gone. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .records import CHECKPOINT_DIR

LOCK_FILE = ".lock"
# what a run (or a sweep, an evaluation) writes itself; Hydra's .hydra/ and reformer.log are not records
# what a training run writes besides its checkpoints (a new run refuses a folder holding any of them)
RUN_RECORDS = ("config.yaml", "metrics.jsonl", "summary.json")
RECORDS = (*RUN_RECORDS, CHECKPOINT_DIR, "eval.json", "sweep.json", "sweep.md")

# every path a run, an evaluation or Hydra writes inside a run folder
WRITTEN = (
    LOCK_FILE, "reformer.log", ".hydra", ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml",
    *RECORDS, "metrics.rejected.jsonl", "job.json", "metrics.csv", "tensorboard", "wandb",
)
FOLDERS = (".hydra", CHECKPOINT_DIR, "tensorboard", "wandb")  # the rest of WRITTEN are files

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, nothing refused
    fcntl = None  # type: ignore[assignment]


class FolderInUse(UserError):
    """Another process holds the folder's lock."""


_held: dict[str, list] = {}  # realpath -> [fd, count]


def _key(folder: Path) -> str:
    return os.path.realpath(folder)


def folder_error(folder: Path, exc: OSError, doing: str = "create run folder") -> UserError:
    """One line for a folder that cannot be created or written."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and not Path(folder).is_dir():
        reason = "a file is in the way"
    return UserError(f"cannot {doing} {folder}: {reason} (choose another folder with hydra.run.dir=...)")


def first_missing(folder: Path) -> Path | None:
    """The outermost of `folder` and its parents that does not exist (None if `folder` exists)."""
    folder = Path(folder)
    missing = None
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        missing = path
    return missing


def make_folder(folder: Path) -> Path | None:
    """Create `folder` (and its parents) if needed; returns the outermost folder created (None if
    `folder` existed)."""
    folder = Path(folder)
    missing = first_missing(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(folder, exc) from None
    return missing


LABEL_LENGTH = 80  # the most characters of a run's name a folder name carries


def folder_label(name: str) -> str:
    """`name` as part of a folder name: characters other than letters, digits and `.,=+-` become
    `-` (a user's `run_name=a/b c` must not make sub-folders or need quoting), at most
    LABEL_LENGTH characters, never empty and never starting with a dot (a hidden folder)."""
    label = re.sub(r"[^A-Za-z0-9.,=+-]+", "-", str(name)).strip("-.")[:LABEL_LENGTH].rstrip("-.")
    return label or "run"


def claim_unique(base: Path) -> tuple[Path, Path]:
    """Create a folder that did not exist: `base`, else `base-2`, `base-3`, ...; returns it and the
    outermost folder created with it."""
    base = Path(base)
    outermost = make_folder(base.parent)
    for n in range(1, 10_000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
            return folder, outermost or folder
        except FileExistsError:
            continue
        except OSError as exc:
            raise folder_error(folder, exc) from None
    raise UserError(f"cannot find a free folder name beside {base}")


def remove_unused(folder: Path, outermost: Path) -> None:
    """Remove `folder` (made by this process for a run that wrote no record) and the empty
    parents made with it, up to `outermost`; a folder another process has written into stays."""
    folder = Path(folder)
    if holds_records(folder):
        return
    shutil.rmtree(folder, ignore_errors=True)
    if folder == Path(outermost):
        return
    for parent in folder.parents:
        try:
            parent.rmdir()  # only if empty
        except OSError:
            return
        if parent == Path(outermost):
            return


def _holder_pid(fd: int) -> str:
    """The pid the holder wrote into the lock file ('unknown' if it has not written it yet)."""
    for _ in range(20):
        try:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        except OSError:
            text = ""
        if text:
            return text
        time.sleep(0.025)
    return "unknown"


def check_paths(folder: Path) -> None:
    """UserError (one line) when a path a run writes in `folder` is a symbolic link, or when
    `checkpoints` is there but is not a folder. Guards against writes through a link clobbering a
    file outside the folder (Hydra and the log follow links), and against a run that would record
    its first steps and only then fail to save a checkpoint, or when a file it writes
    (metrics.jsonl, summary.json, ...) is a folder."""
    folder = Path(folder)
    for name in WRITTEN:
        path = folder / name
        if path.is_symlink():
            raise UserError(
                f"{path} is a symbolic link: a run folder's records are never written through links; remove it"
            )
        if name not in FOLDERS and path.is_dir():
            raise UserError(f"{path} is a folder, not a file: the run's records cannot be written there; remove it")
    checkpoints = folder / CHECKPOINT_DIR
    if checkpoints.exists() and not checkpoints.is_dir():
        raise UserError(f"{checkpoints} is not a folder: checkpoints cannot be written there; remove it")
    for name in ("tensorboard", "wandb"):  # the loggers' folders (.hydra: Hydra reports its own)
        if (folder / name).exists() and not (folder / name).is_dir():
            raise UserError(f"{folder / name} is not a folder: the {name} logger cannot write there; remove it")


def _open_lock(folder: Path, what: str) -> int:
    """A descriptor on `folder`'s lock file, never through a link (O_NOFOLLOW) and never on a file
    that is not a lock file of its own (another name for it: a hard link; not a regular file)."""
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(
                f"{path} is a symbolic link: a run folder's records are never written through links; remove it"
            ) from None
        raise folder_error(folder, exc, f"write to {what}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise UserError(f"{path} is not a lock file of its own (a hard link or not a regular file); remove it")
    return fd


def acquire(folder: Path, what: str = "run folder") -> None:
    """Take the lock of `folder` (reentrant within this process); FolderInUse if another holds it.
    A folder whose paths are links is refused first (`check_paths`)."""
    folder = Path(folder)
    key = _key(folder)
    if key in _held:
        _held[key][1] += 1
        return
    make_folder(folder)
    check_paths(folder)
    fd = _open_lock(folder, what)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise folder_error(folder, exc, f"lock {what}") from None
            pid = _holder_pid(fd)
            os.close(fd)
            raise FolderInUse(
                f"{what} {folder} is in use by another reformer process (pid {pid}); wait for it to finish,"
                " or choose another folder"
            ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise folder_error(folder, exc, f"write to {what}") from None
    _held[key] = [fd, 1]


def release(folder: Path) -> None:
    key = _key(folder)
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _held[key]
        os.close(entry[0])  # closing the only descriptor releases the flock


@contextlib.contextmanager
def hold(folder: Path, what: str = "run folder") -> Iterator[None]:
    acquire(folder, what)
    try:
        yield
    finally:
        release(folder)


@contextlib.contextmanager
def claimed(folder: Path, created: Path | None, what: str = "run folder", lock: bool = True) -> Iterator[None]:
    """Hold `folder`'s lock while the block runs (unless `lock` is false: under torchrun the ranks
    other than 0 share the folder rank 0 holds). If the block fails and the folder was created
    for it (`created`: the outermost folder made with it), it is removed when it holds no record,
    still under the lock."""
    with hold(folder, what) if lock else contextlib.nullcontext():
        succeeded = False
        try:
            yield
            succeeded = True
        finally:
            if created is not None and not succeeded:
                remove_unused(folder, created)


def is_held_here(folder: Path) -> bool:
    return _key(folder) in _held


def holder(folder: Path) -> str | None:
    """The pid holding `folder`'s lock in another process, or None if it is free (or held here)."""
    path = Path(folder) / LOCK_FILE
    if fcntl is None or is_held_here(folder) or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        pid = _holder_pid(fd)
        os.close(fd)
        return pid
    os.close(fd)  # it was free (closing releases the shared lock just taken)
    return None


def remove_orphaned_temps(folder: Path) -> list[Path]:
    """Delete the `.<name>.<random>.tmp` files of interrupted atomic writes in a run folder and
    its checkpoints/ (call it holding the folder's lock: then no write is in progress)."""
    removed = []
    for where in (Path(folder), Path(folder) / CHECKPOINT_DIR):
        if not where.is_dir():
            continue
        for path in where.glob(".*.tmp"):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def holds_records(folder: Path) -> bool:
    """Whether `folder` (a run folder, or a sweep folder of run folders) holds a run's own records."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    places = [folder] + [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return any((place / name).exists() for place in places for name in RECORDS)
