"""Hostile input: a run folder or a checkpoint made to clobber files, exhaust memory or lose history.

Each case asserts the exact one-line error and its exit code (or the one-line message of a skipped
checkpoint), and that nothing outside the run folder changed. Runs are tiny (TINY, a few steps) and
go in-process; nothing here allocates more than a few hundred MB.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from .conftest import TINY, in_process

BASE = [*TINY, "attention=full"]
LINKED = "is a symbolic link: a run folder's records are never written through links; remove it"


def one_error_line(stderr: str) -> str:
    """The one line of `stderr`, which must be `error: ...` without a traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256 of the bytes (or 'dir')} of everything under `folder`."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def home(tmp_path) -> Path:
    """Files outside the run folder that a link in it may point at."""
    home = tmp_path / "home"
    (home / "elsewhere").mkdir(parents=True)
    (home / "important.txt").write_text("do not touch\n")
    (home / "elsewhere" / "kept.txt").write_text("kept\n")
    return home


# ------------------------------------------------------------------------------ 1. links


@pytest.mark.parametrize("name", [
    ".lock", "reformer.log", ".hydra/overrides.yaml", ".hydra/config.yaml", ".hydra/hydra.yaml",
    "metrics.jsonl", "summary.json", "config.yaml", "checkpoints", ".hydra",
])
def test_a_symlink_in_the_run_folder_is_refused_before_anything_is_written(name, home, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    link = run / name
    link.parent.mkdir(parents=True)
    target = home / ("elsewhere" if name in ("checkpoints", ".hydra") else "important.txt")
    link.symlink_to(target)
    before = snapshot(home)
    code, err = in_process(["run", *BASE, "trainer.max_steps=2", "hydra.run.dir=run"], capsys)
    assert code == 2
    assert one_error_line(err) == f"error: run/{name} {LINKED}"
    assert snapshot(home) == before
    assert sorted(p.name for p in run.iterdir()) == sorted({name.split("/")[0]})  # nothing written


def test_the_lock_is_never_opened_through_a_link_or_on_a_hard_link(home, tmp_path):
    from reformer_cli import run_folder
    from reformer_cli.errors import UserError

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(home / "important.txt")
    with pytest.raises(UserError, match=f"^{run / '.lock'} {LINKED}$"):
        run_folder._open_lock(run, "run folder")  # the lock itself, past check_paths
    (run / ".lock").unlink()
    os.link(home / "important.txt", run / ".lock")
    with pytest.raises(UserError, match="is not a lock file of its own"):
        run_folder.acquire(run)
    assert (home / "important.txt").read_text() == "do not touch\n"
    assert not run_folder.is_held_here(run)


def test_atomic_writes_replace_a_link_and_appends_refuse_one(home, tmp_path):
    from reformer_cli.errors import UserError
    from reformer_cli.records import MetricsLog, write_json_atomic, write_text_atomic

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "summary.json", "metrics.jsonl"):
        (run / name).symlink_to(home / "important.txt")
    before = snapshot(home)
    write_text_atomic(run / "config.yaml", "a: 1\n")
    write_json_atomic(run / "summary.json", {"a": 1})
    assert not (run / "config.yaml").is_symlink() and (run / "config.yaml").read_text() == "a: 1\n"
    assert not (run / "summary.json").is_symlink()
    with pytest.raises(UserError, match=f"^{run / 'metrics.jsonl'} {LINKED}$"):
        MetricsLog(run / "metrics.jsonl").append({"step": 1, "split": "train"})
    assert snapshot(home) == before


def test_a_checkpoints_file_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("a file")
    (run / "metrics.jsonl").write_text('{"step": 2, "split": "train"}\n{"step": 4, "split": "train"}\n'
                                       '{"step": 6, "split": "train"}\n')
    before = snapshot(run)
    code, err = in_process(["run", *BASE, "trainer.max_steps=2", "resume=auto", "hydra.run.dir=run"], capsys)
    assert code == 2
    assert one_error_line(err) == "error: run/checkpoints is not a folder: checkpoints cannot be written there; remove it"
    assert snapshot(run) == before
