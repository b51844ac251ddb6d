"""The run folder's lock, unique names and leftovers (reformer_cli/run_folder.py)."""

from __future__ import annotations

import threading

import pytest

from reformer_cli import run_folder
from reformer_cli.run_folder import FolderInUse

from .conftest import another_process_holding


def test_claim_unique_gives_every_caller_its_own_folder(tmp_path):
    base = tmp_path / "outputs" / "synthetic" / "2030-01-02_03-04-05"
    claimed, start = [], threading.Barrier(8)

    def claim():
        start.wait()
        claimed.append(run_folder.claim_unique(base)[0])

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in claimed) == sorted([base.name] + [f"{base.name}-{n}" for n in range(2, 9)])


def test_the_lock_refuses_another_process_and_names_it(tmp_path):
    folder = tmp_path / "run"
    with another_process_holding(folder) as holder:
        assert run_folder.holder(folder) == str(holder.pid)
        with pytest.raises(FolderInUse, match=f"run folder {folder} is in use by another reformer process"
                                              f" \\(pid {holder.pid}\\)"):
            run_folder.acquire(folder)
    assert run_folder.holder(folder) is None  # the kernel released it with the process
    with run_folder.hold(folder):
        with run_folder.hold(folder):  # reentrant within a process
            assert run_folder.is_held_here(folder)
        assert run_folder.is_held_here(folder)
    assert not run_folder.is_held_here(folder)


def test_leftovers(tmp_path):
    run = tmp_path / "a" / "b" / "run"
    outermost = run_folder.make_folder(run)
    assert outermost == tmp_path / "a"
    (run / ".hydra").mkdir()
    (run / "checkpoints").mkdir()
    for name in (".metrics.jsonl.x1.tmp", "checkpoints/.step-00000004.pt.y2.tmp"):
        (run / name).write_text("partial")
    (run / "checkpoints" / "step-00000002.pt").write_text("kept")
    assert {p.name for p in run_folder.remove_orphaned_temps(run)} == {".metrics.jsonl.x1.tmp",
                                                                        ".step-00000004.pt.y2.tmp"}
    assert (run / "checkpoints" / "step-00000002.pt").is_file()
    run_folder.remove_unused(run, outermost)  # it holds a record: kept
    assert run.is_dir()
    (run / "checkpoints" / "step-00000002.pt").unlink()
    (run / "checkpoints").rmdir()
    run_folder.remove_unused(run, outermost)  # only Hydra's files: removed with the parents made for it
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("name, label", [
    ("synthetic-lsh-4-standard-seed0", "synthetic-lsh-4-standard-seed0"),
    ("lr=3e-3,seed=1", "lr=3e-3,seed=1"),
    ("my run/../x", "my-run-..-x"),
    ("../..", "run"),
    ("", "run"),
])
def test_a_run_name_becomes_a_safe_folder_label(name, label):
    assert run_folder.folder_label(name) == label
    assert len(run_folder.folder_label("x" * 500)) == run_folder.LABEL_LENGTH


def test_resume_auto_finds_runs_in_old_and_new_folder_names(tmp_path):
    """Folders named `<date>_<time>` (before runs carried their name) and `<date>_<time>_<name>`
    are both candidates, the newest by time first."""
    from omegaconf import OmegaConf

    from reformer_cli.resume import choose_run

    from .conftest import TINY, compose

    cfg = OmegaConf.to_container(compose(TINY), resolve=True)
    task = tmp_path / "outputs" / "synthetic"
    old, new = task / "2030-01-02_03-04-05", task / "2030-01-02_03-04-06_synthetic-full-standard-seed0"
    for folder in (old, new):
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "step-00000003.pt").write_bytes(b"")
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    assert choose_run(cfg, tmp_path / "outputs") == (new, None)
    (new / "config.yaml").write_text(OmegaConf.to_yaml({**cfg, "seed": 7}))  # another config
    assert choose_run(cfg, tmp_path / "outputs") == (old, None)
