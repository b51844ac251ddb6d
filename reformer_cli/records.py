"""A run's local records (docs/runner.md, "Records"): config.yaml, metrics.jsonl, summary.json, checkpoints.

Layout of a run folder:
    config.yaml               the composed, resolved config
    metrics.jsonl             one JSON object per log or evaluation step
    summary.json              final and best metrics, versions, device, timing (atomic)
    checkpoints/step-N.pt     the last `trainer.keep_last` checkpoints (atomic: temp file + rename)

Every write that a later reader trusts is atomic: a crash leaves the previous version or nothing.
Checkpoints hold only tensors and plain Python values, so `torch.load(weights_only=True)` reads
them (docs/runner.md, "Checkpoints").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .errors import UserError

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_RE = re.compile(r"^step-(\d+)\.pt$")


def _atomic_write_bytes(path: Path, write: Any) -> None:
    """Write via a temp file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode()
    _atomic_write_bytes(Path(path), lambda f: f.write(data))


def write_text_atomic(path: Path, text: str) -> None:
    _atomic_write_bytes(Path(path), lambda f: f.write(text.encode()))


class MetricsLog:
    """metrics.jsonl: appended line by line, flushed each time (readable while the run goes on)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash mid-write
                break
        return records

    def truncate_after(self, step: int) -> None:
        """Keep the lines up to `step` (a resumed run re-logs what came after its checkpoint)."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints of a run folder, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(run_dir: Path, step: int, state: dict, keep_last: int) -> Path:
    """Write `state` as step-N.pt atomically and delete all but the newest `keep_last`."""
    import torch

    path = checkpoint_path(run_dir, step)
    _atomic_write_bytes(path, lambda f: torch.save(state, f))
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict:
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
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
    from . import __version__

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
