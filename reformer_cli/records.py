"""A run's local records (docs/runner.md, "Records"): config.yaml, metrics.jsonl, summary.json, checkpoints.

Layout of a run folder:
    config.yaml               the composed, resolved config
    metrics.jsonl             one JSON object per log or evaluation step
    summary.json              final and best metrics, versions, device, timing (atomic)
    checkpoints/step-N.pt     the last `trainer.keep_last` checkpoints (atomic: temp file + rename)
    checkpoints/best.pt       with trainer.keep_best: the best periodic evaluation's (never pruned)

Every write that a later reader trusts is atomic: a crash leaves the previous version or nothing.
Checkpoints hold only tensors and plain Python values, so `torch.load(weights_only=True)` reads
them (docs/runner.md, "Checkpoints"). JSON is strict: a non-finite number is written as `null`
(a metrics line lists such keys under `nonfinite`), never as `NaN` or `Infinity`. A write that the disk
refuses (full, read-only, no permission) is one line (`UserError`), never a traceback. Files get
the mode the umask gives a new file (0644 usually); appends never follow a symbolic link, and a
rename replaces a link instead of writing through it. metrics.jsonl is read tolerantly: a line
that is not a metrics record is set aside in metrics.rejected.jsonl, never dropped.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from . import __version__
from .errors import UserError

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_RE = re.compile(r"^step-(\d+)\.pt$")
CHECKPOINT_FORMAT = 1  # the layout of a checkpoint's fields (checkpointer.py writes it)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)
NEARLY_FULL = 1 << 20  # bytes free below which a failed write is taken for a full disk


def _errno_of(exc: BaseException) -> int | None:
    """The errno of `exc` or of an OSError among its causes (torch wraps some in RuntimeError)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def write_error(path: Path, exc: BaseException, free: int | None = None) -> UserError | None:
    """One line for a write the file system refused, or None when `exc` is not such an error (a bug
    keeps its traceback). `free`: bytes free on that disk, measured before the partial file went."""
    code = _errno_of(exc)
    if free is None:
        free = _free_bytes(Path(path).parent)
    if code in DISK_FULL or (code is None and isinstance(exc, RuntimeError) and free is not None and free < NEARLY_FULL):
        left = f"{free / 2**20:.1f} MiB free" if free is not None else "no space left"
        return UserError(
            f"disk full: cannot write {path} ({left} on that disk); free some space or write elsewhere"
            " (hydra.run.dir=...), then continue with resume=auto: what was written before is intact"
        )
    if code in NOT_ALLOWED:
        return UserError(f"cannot write {path}: {os.strerror(code)}")
    if isinstance(exc, OSError):
        return UserError(f"cannot write {path}: {exc.strerror or exc}")
    return None


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux:
    /proc/self/status); elsewhere set and restored at once, under a lock."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _temp_beside(path: Path) -> tuple[int, str]:
    """(fd, name) of a new temp file in `path`'s folder (created if needed), named so that
    run_folder.remove_orphaned_temps finds it; a refusal is one line (`write_error`). Its mode is
    that of a file the user creates (0o666 less the umask, 0644 usually), not mkstemp's 0600, so
    records are as readable as .hydra/ and the log beside them."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except OSError:
        pass  # a file system without modes (some network shares): mkstemp's own mode stays
    return fd, name


def _interrupted(exc: BaseException | None) -> bool:
    """Whether a Ctrl-C (KeyboardInterrupt) is `exc` or behind it: torch's zip writer, interrupted
    inside a write, reports the interrupt as a RuntimeError of its own on closing the archive."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write via a temp file in the same folder, fsync, then rename over `path`: `path` is the
    old file or the whole new one, never part of one. A Ctrl-C during the write abandons it (the
    temp file removed) and comes out as a plain KeyboardInterrupt, whatever the writer made of it."""
    path = Path(path)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if _interrupted(exc):
            Path(tmp).unlink(missing_ok=True)
            raise KeyboardInterrupt from None
        free = _free_bytes(path.parent) if isinstance(exc, (OSError, RuntimeError)) else None
        Path(tmp).unlink(missing_ok=True)
        error = write_error(path, exc, free) if isinstance(exc, (OSError, RuntimeError)) else None
        if error is not None:
            raise error from None
        raise


def strict(value: Any) -> Any:
    """`value` with every non-finite float (in dicts and lists too) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def strict_record(record: dict) -> dict:
    """A metrics line for strict JSON: non-finite values become null and their keys are listed
    under `nonfinite`."""
    bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
    if not bad:
        return record
    return {**strict(record), "nonfinite": bad}


def check_writable(path: Path) -> None:
    """UserError (one line) unless a file can be written at `path`: checked before work whose
    result would otherwise be lost at the end."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    fd, tmp = _temp_beside(path)
    os.close(fd)
    os.unlink(tmp)


def write_json_atomic(path: Path, obj: Any) -> None:
    data = (json.dumps(strict(obj), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n").encode()
    atomic_write_bytes(Path(path), lambda f: f.write(data))


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), lambda f: f.write(text.encode()))


BOM = b"\xef\xbb\xbf"


def parse_metrics_line(raw: bytes) -> dict | None:
    """The metrics record on one line of metrics.jsonl, or None when the line is not one: not
    UTF-8, not JSON, not an object, or its `step` is not an integer (`[1, 2]`, `{"step": "four"}`)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both are
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    return record


class MetricsLog:
    """metrics.jsonl: appended line by line, flushed each time (readable while the run goes on).
    Read tolerantly: a byte-order mark is ignored, and a line that is not a metrics record (cut by
    a crash, edited by hand) never makes the lines around it disappear; when the file is rewritten
    such lines are kept in metrics.rejected.jsonl beside it, and a log line says so."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def rejected_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.rejected.jsonl")

    def parse(self) -> tuple[list[dict], list[bytes]]:
        """(the metrics records, the lines that are not one), in file order; blank lines are neither."""
        if not self.path.exists():
            return [], []
        data = self.path.read_bytes()
        if data.startswith(BOM):
            data = data[len(BOM):]
        records, rejected = [], []
        for raw in data.splitlines():
            if not raw.strip():
                continue
            record = parse_metrics_line(raw)
            if record is None:
                rejected.append(raw)
            else:
                records.append(record)
        return records, rejected

    def read(self) -> list[dict]:
        return self.parse()[0]

    def set_aside(self, lines: list[bytes]) -> None:
        """Append `lines` to metrics.rejected.jsonl (never lost with the rewrite) and log one line."""
        try:
            with open_for_append(self.rejected_path, binary=True) as f:
                f.write(b"".join(line + b"\n" for line in lines))
        except OSError as exc:
            raise write_error(self.rejected_path, exc) from None
        logging.getLogger("reformer").warning(
            "%s: %d line(s) that are not metrics records (not JSON objects with an integer step) were kept in %s",
            self.path, len(lines), self.rejected_path,
        )

    def truncate_after(self, step: int) -> None:
        """Keep the lines up to `step` (a resumed run re-logs what came after its checkpoint) except
        final evaluations (`"final": true`: a resumed run evaluates again at its end, so a final line
        is never written twice); the lines that are not metrics records go to metrics.rejected.jsonl first."""
        records, rejected = self.parse()
        if rejected:
            self.set_aside(rejected)
        kept = [r for r in records if r["step"] <= step and r.get("final") is not True]
        write_text_atomic(self.path, "".join(json.dumps(strict_record(r), allow_nan=False) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        line = json.dumps(strict_record(record), allow_nan=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open_for_append(self.path) as f:
                f.write(line)
                f.flush()
        except OSError as exc:
            raise write_error(self.path, exc) from None


def open_for_append(path: Path, binary: bool = False) -> Any:
    """`path` opened for appending (text, or bytes with `binary`), never through a symbolic link (O_NOFOLLOW): a link planted
    in a run folder would otherwise make a run append to a file elsewhere. A link is one line."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(
                f"{path} is a symbolic link: a run folder's records are never written through links; remove it"
            ) from None
        raise
    return os.fdopen(fd, "ab" if binary else "a")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file's name (`step-N.pt`) says, or None for another file."""
    match = CHECKPOINT_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints of a run folder, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    steps = ((checkpoint_step(path), path) for path in folder.iterdir())
    return sorted((step, path) for step, path in steps if step is not None)


class OversizedCheckpoint(UserError):
    """A checkpoint whose contents would unpack to more memory than it can legitimately need."""

    def __init__(self, path: Path, total: int, limit: int):
        self.why = (f"it unpacks to {total / 2**20:.0f} MiB, more than a checkpoint of this model holds,"
                    f" at most {limit / 2**20:.0f} MiB")
        super().__init__(f"checkpoint {path}: {self.why}")


UNPACK_SLACK = 16 << 20  # bytes beyond the limits below: the pickled config, counters, zip headers


def unpacked_size(path: Path) -> int | None:
    """The bytes a checkpoint's entries unpack to, read from its zip central directory alone (no
    entry is decompressed); None for a file that is not a zip (torch.load then says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def check_unpacked_size(path: Path, limit: int | None = None) -> None:
    """OversizedCheckpoint unless `path` unpacks to at most `limit` bytes (a limit derived from the
    model) and to at most twice its own size (torch.save stores entries uncompressed, so a genuine
    checkpoint never unpacks to more than its file). Guards against a small file that decompresses
    to gigabytes (a zip bomb) being read into memory by torch.load."""
    total = unpacked_size(path)
    if total is None:
        return
    limits = [2 * Path(path).stat().st_size + UNPACK_SLACK]
    if limit is not None:
        limits.append(limit)
    if total > min(limits):
        raise OversizedCheckpoint(path, total, min(limits))


def _kind_of(value: Any) -> str:
    return {list: "a list", tuple: "a tuple", str: "a string", bytes: "bytes", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def checkpoint_type_problem(saved: Any) -> str | None:
    """Why a loaded checkpoint's fields have the wrong type (`state` a list, `model` a string, a
    weight that is not a tensor, `config.attention` not a mapping), or None. Checked before any of
    them is used, so that an edited checkpoint is one line (or skipped) and never a traceback."""
    import torch

    if not isinstance(saved, dict):
        return f"it holds {_kind_of(saved)}, not a checkpoint's fields"
    written = saved.get("format", CHECKPOINT_FORMAT)  # written by every version; a hand-made one may lack it
    if type(written) is not int or written != CHECKPOINT_FORMAT:
        return f"its format is {written!r}, not {CHECKPOINT_FORMAT}, the one this version of reformer reads"
    for key in ("model", "optimizer", "state", "window", "config"):
        if saved.get(key) is not None and not isinstance(saved[key], dict):
            return f"its {key} is {_kind_of(saved[key])}, not a mapping"
    for name, value in (saved.get("model") or {}).items():
        if not isinstance(value, torch.Tensor):
            return f"its model weight {name!r} is {_kind_of(value)}, not a tensor"
    for key in ("attention", "task", "model", "trainer"):
        value = (saved.get("config") or {}).get(key)
        if value is not None and not isinstance(value, dict):
            return f"its config.{key} is {_kind_of(value)}, not a mapping"
    return None


def load_checkpoint(path: Path, map_location: Any = "cpu", max_unpacked: int | None = None) -> dict:
    """A checkpoint's contents (tensors and plain values only), after `check_unpacked_size` with
    `max_unpacked` (bytes, from the model when it is known)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    check_unpacked_size(path, max_unpacked)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, corrupted or not a checkpoint
        raise UserError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None


def find_checkpoint(target: str | Path) -> Path | None:
    """A checkpoint file itself, or the newest checkpoint of a run folder (None if it has none)."""
    target = Path(target)
    if target.is_file():
        return target
    if target.is_dir():
        found = list_checkpoints(target)
        return found[-1][1] if found else None
    raise UserError(f"{target} is neither a checkpoint file nor a run folder")


def code_version() -> dict[str, Any]:
    """Package version and, from a git clone, the commit and whether the tree was modified
    (results/ aside: a reproduction writes its records there while it runs)."""
    info: dict[str, Any] = {"package": __version__, "git_sha": None, "git_dirty": None}
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():  # an installed package: the folder around it is not its source
        return info
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        ).stdout
        info.update(git_sha=sha, git_dirty=bool(status.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    return info
