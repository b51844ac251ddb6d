"""Hostile command-line arguments: quoted folders (`hydra.run.dir='a b/ü run'`, `resume='...'`)
mean the folder Hydra reads, lock included; `resume=` a file that is no checkpoint, an override
key of 100,000 characters: one short line; `reformer eval` on a run folder whose newest
checkpoint is damaged evaluates the previous one, as resuming does.

Tiny in-process runs (tests/test_hostile.py's trained run folder), seconds each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reformer_cli.cli import main

from .conftest import another_process_holding, in_process
from .test_hostile import BASE, one_error_line, trained, untouched  # noqa: F401  (fixtures)

SPACED = "a b/ü run"  # a space, a sub-folder and a non-ASCII letter


def test_a_quoted_run_folder_is_locked_where_the_run_writes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / SPACED
    folder.mkdir(parents=True)
    with another_process_holding(folder):
        code, err = in_process(["run", *BASE, "trainer.max_steps=2", f"hydra.run.dir='{SPACED}'"], capsys)
    assert code == 2
    assert one_error_line(err).startswith(f"error: run folder {SPACED} is in use by another reformer process")
    code, err = in_process(["run", *BASE, "trainer.max_steps=2", f"hydra.run.dir='{SPACED}'"], capsys)
    assert code in (0, None), err
    assert (folder / "summary.json").is_file() and (folder / ".lock").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a b"]  # no folder named after the quotes


def test_a_quoted_resume_folder_is_continued_in_place(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["run", *BASE, "trainer.ckpt_every=2"]
    assert in_process([*args, "trainer.max_steps=2", f"hydra.run.dir='{SPACED}'"], capsys)[0] in (0, None)
    code, err = in_process([*args, "trainer.max_steps=4", f"resume='{SPACED}'"], capsys)
    assert code in (0, None), err
    folder = tmp_path / SPACED
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["step-00000002.pt", "step-00000004.pt"]
    assert json.loads((folder / "summary.json").read_text())["steps"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a b"]  # no new run folder


def test_resuming_from_a_file_that_is_no_checkpoint_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, err = in_process(["run", *BASE, "trainer.max_steps=2", f"resume={notes}"], capsys)
    assert code == 2
    assert one_error_line(err) == (f"error: cannot resume from {notes}: it is not a run folder, nor a usable"
                                   " checkpoint (it cannot be read: truncated or corrupted)")
    assert notes.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no run folder left


def test_an_override_key_of_100000_characters_is_one_short_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    key = "k" * 100_000
    for override in (f"{key}=1", f"+{key}=1", f"model.{key}=1"):
        code, err = in_process(["run", *BASE, override], capsys)
        assert code == 2
        line = one_error_line(err)
        assert line.startswith("error: unknown config key '") and len(line) < 250, line[:300]
        assert "100,0" in line  # its length is said, not echoed
    assert list(tmp_path.iterdir()) == []


def test_a_run_folder_name_too_long_for_the_file_system_is_one_short_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", *BASE, f"hydra.run.dir={'d' * 300}"], capsys)
    assert code == 2
    line = one_error_line(err)
    assert line.startswith("error: cannot write ") and "(300 characters)" in line and len(line) < 250, line
    assert list(tmp_path.iterdir()) == []


def test_an_override_key_too_long_for_a_file_name_is_one_line(tmp_path, monkeypatch, capsys):
    """Hydra looks up a config group file named after the key: the file system refuses the name."""
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", *BASE, f"{'k' * 300}=1"], capsys)
    assert code == 2
    assert one_error_line(err) == (f"error: unknown config key '{'k' * 80}... (300 characters)': too long for any"
                                   " key or option (list the keys with: reformer run --cfg job)")
    assert list(tmp_path.iterdir()) == []


def test_eval_falls_back_past_a_truncated_newest_checkpoint(trained, untouched, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    newest = run / "checkpoints" / "step-00000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    previous = run / "checkpoints" / "step-00000002.pt"
    common = ["eval", "max_batches=1", "progress=none"]
    assert main([*common, f"checkpoint={run}", "output=folder.json"]) in (0, None)
    shown = capsys.readouterr()
    warning = f"checkpoint={run}: skipping step-00000004.pt (it cannot be read: truncated or corrupted);" \
              " evaluating step-00000002.pt, the newest usable checkpoint"
    assert (shown.out + shown.err).count(warning) == 1 and "Traceback" not in shown.err, shown
    code, err = in_process([*common, f"checkpoint={previous}", "output=file.json"], capsys)
    assert code in (0, None), err
    by_folder, by_file = (json.loads((tmp_path / name).read_text()) for name in ("folder.json", "file.json"))
    assert by_folder["checkpoint"] == by_file["checkpoint"] == str(previous.resolve())
    assert by_folder["metrics"] == by_file["metrics"]
    assert newest.stat().st_size == 1000  # evaluating changes no run folder


def test_eval_of_a_folder_without_a_usable_checkpoint_is_one_line(trained, untouched, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    for path in (run / "checkpoints").glob("step-*.pt"):
        path.write_bytes(b"not a checkpoint")
    code, err = in_process(["eval", "max_batches=1", f"checkpoint={run}"], capsys)
    assert code == 2
    assert one_error_line(err) == (
        "error: no usable checkpoint to evaluate (step-00000004.pt: it cannot be read: truncated or corrupted;"
        " step-00000002.pt: it cannot be read: truncated or corrupted)")
