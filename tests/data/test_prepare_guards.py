"""`reformer data prepare` checks every new argument before it touches a folder that is already
prepared, and one folder is prepared by one process at a time."""

from __future__ import annotations

from pathlib import Path

from ..conftest import another_process_holding, in_process
from .conftest import SIZES
from .formats import text_bytes


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every prepared file with its modification time and bytes (the lock file names its last holder)."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())
            if p.is_file() and p.name != ".lock"}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_bad_split_fractions_leave_a_prepared_text_alone(tmp_path, capsys):
    corpus, folder = tmp_path / "corpus.txt", tmp_path / "prepared"
    corpus.write_bytes(text_bytes(20_000))
    base = ["data", "prepare", "task=text", f"task.path={corpus}", f"task.data_dir={folder}"]
    assert in_process(base, capsys)[0] == 0
    before = snapshot(folder)
    code, err = in_process([*base, "task.split_fractions=[0.5,0.1,0.1]"], capsys)
    assert code == 2 and "adding up to 1" in one_line(err)
    assert snapshot(folder) == before


def test_split_sizes_that_do_not_fit_the_source_leave_a_prepared_enwik8_alone(tmp_path, capsys):
    source, folder = tmp_path / "enwik8", tmp_path / "prepared"
    source.write_bytes(text_bytes(sum(SIZES), seed=2))
    base = ["data", "prepare", "task=enwik8", f"task.data_dir={folder}", "--source", str(source), "--no-verify"]
    sizes = f"task.split_sizes=[{','.join(map(str, SIZES))}]"
    assert in_process([*base, sizes], capsys)[0] == 0
    before = snapshot(folder)
    code, err = in_process([*base, f"task.split_sizes=[{sum(SIZES)},1,1]"], capsys)
    assert code == 2 and f"add up to {sum(SIZES) + 2:,} bytes" in one_line(err)
    assert snapshot(folder) == before  # the manifest of the good preparation is still there
    code, err = in_process(["data", "verify", "task=enwik8", f"task.data_dir={folder}", sizes], capsys)
    assert code == 0, err


def test_a_second_prepare_into_the_same_folder_is_refused_in_one_line(tmp_path, capsys):
    corpus, folder = tmp_path / "corpus.txt", tmp_path / "prepared"
    corpus.write_bytes(text_bytes(20_000))
    folder.mkdir()
    with another_process_holding(folder) as holder:
        code, err = in_process(["data", "prepare", "task=text", f"task.path={corpus}", f"task.data_dir={folder}"],
                               capsys)
    assert code == 2
    assert one_line(err) == (f"error: data folder {folder} is in use by another reformer process (pid {holder.pid});"
                             " wait for it to finish, or choose another folder")
    assert not (folder / "manifest.json").exists()


def test_a_lock_file_that_is_a_link_is_refused_and_not_followed(tmp_path, capsys):
    corpus, folder, elsewhere = tmp_path / "corpus.txt", tmp_path / "prepared", tmp_path / "notes.txt"
    corpus.write_bytes(text_bytes(20_000))
    elsewhere.write_text("mine\n")
    folder.mkdir()
    (folder / ".lock").symlink_to(elsewhere)
    code, err = in_process(["data", "prepare", "task=text", f"task.path={corpus}", f"task.data_dir={folder}"], capsys)
    assert code == 2 and "is a symbolic link" in one_line(err)
    assert elsewhere.read_text() == "mine\n"


def test_a_failed_first_prepare_leaves_no_folder(tmp_path, capsys):
    folder = tmp_path / "cache" / "prepared"
    code, err = in_process(["data", "prepare", "task=enwik8", f"task.data_dir={folder}", "--source",
                            str(tmp_path / "missing.zip")], capsys)
    assert code == 2 and "does not exist" in one_line(err)
    assert not (tmp_path / "cache").exists()
