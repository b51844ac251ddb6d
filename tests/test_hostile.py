"""Hostile input: a run folder or a checkpoint made to clobber files, exhaust memory or lose history.

Each case asserts the exact one-line error and its exit code (or the one-line message of a skipped
checkpoint), and that nothing outside the run folder changed. Runs are tiny (TINY, a few steps) and
go in-process; nothing here allocates more than a few hundred MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
import zipfile
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


# ------------------------------------------------------------------------------ 2. checkpoints


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run folder with checkpoints at steps 2 and 4 (adamw)."""
    from reformer_cli.cli import main

    root = tmp_path_factory.mktemp("trained")
    assert main(["run", *BASE, "trainer.max_steps=4", "trainer.ckpt_every=2", "trainer.log_every=1",
                 f"hydra.run.dir={root / 'run'}"]) == 0
    return root / "run"


@pytest.fixture
def untouched(trained):
    """Asserts at the end of a test that the run folder it copied (outside its own) is unchanged."""
    before = snapshot(trained)
    yield
    assert snapshot(trained) == before


BOMB_MIB = 300


@pytest.fixture(scope="module")
def bomb(trained, tmp_path_factory) -> Path:
    """The step-4 checkpoint rewritten with deflated entries, its first tensor record followed by
    BOMB_MIB MiB of zeros: a file of about 1 MB that torch.load would decompress whole."""
    out = tmp_path_factory.mktemp("bomb") / "step-00000004.pt"
    source = zipfile.ZipFile(trained / "checkpoints" / "step-00000004.pt")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for info in source.infolist():
            with archive.open(info.filename, "w", force_zip64=True) as f:
                f.write(source.read(info.filename))
                if info.filename.endswith("/data/0"):
                    chunk = bytes(1 << 20)
                    for _ in range(BOMB_MIB):
                        f.write(chunk)
    assert out.stat().st_size < 4 << 20
    return out


def in_child(work) -> dict:
    """`work()` in a forked child: {"seconds", "extra_mib" (peak resident memory above the child's
    start), "result" (repr) or "error"}; the child's peak starts at its resident size at the fork."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read)
            page = os.sysconf("SC_PAGE_SIZE")
            start = int(Path("/proc/self/statm").read_text().split()[1]) * page
            began = time.perf_counter()
            try:
                out = {"result": repr(work())}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                out = {"error": f"{type(exc).__name__}: {exc}"}
            out["seconds"] = time.perf_counter() - began
            out["extra_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start) / 2**20
            os.write(write, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc")
def test_a_zip_bomb_checkpoint_is_skipped_unread(trained, bomb):
    from reformer_cli.resume import load_usable_checkpoint

    older = trained / "checkpoints" / "step-00000002.pt"

    def resume():
        path, saved, skipped = load_usable_checkpoint([bomb, older], "cpu", max_unpacked=None)
        return path.name, saved["state"]["step"], [(p.name, why) for p, why in skipped]

    out = in_child(resume)
    assert "error" not in out, out
    limit = (2 * bomb.stat().st_size + (16 << 20)) / 2**20  # no model given: twice the file's size + 16 MiB
    assert out["result"] == repr(("step-00000002.pt", 2, [(
        "step-00000004.pt",
        f"it unpacks to {BOMB_MIB + 1} MiB, more than a checkpoint of this model holds, at most {limit:.0f} MiB",
    )]))
    assert out["seconds"] < 2
    assert out["extra_mib"] < 100, out


def test_resume_skips_a_zip_bomb_like_a_truncated_checkpoint(trained, untouched, bomb, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.copy(bomb, run / "checkpoints" / "step-00000004.pt")
    reference = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    code, err = in_process(["run", *BASE, "trainer.max_steps=4", "trainer.ckpt_every=2", "trainer.log_every=1",
                            "resume=auto", f"hydra.run.dir={run}"], capsys)
    assert code in (0, None), err
    log = (run / "reformer.log").read_text()
    # the model's limit: 85,120 float32 parameters (0.32 MiB) x 4 x 2 + 16 MiB
    assert (f"resume: skipping {run / 'checkpoints' / 'step-00000004.pt'} (it unpacks to {BOMB_MIB + 1} MiB, more"
            " than a checkpoint of this model holds, at most 19 MiB)") in log
    assert (run / "checkpoints" / "step-00000004.pt.unusable").is_file()
    steps = [r["step"] for r in (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == [r["step"] for r in reference]


def test_a_checkpoint_larger_than_its_model_needs_is_refused_unread(trained, tmp_path):
    """An uncompressed checkpoint (as torch.save writes) whose entries exceed what the model's
    weights and optimizer state can take: refused by the model's limit, not by its file size."""
    from reformer_cli.records import OversizedCheckpoint, load_checkpoint

    big = tmp_path / "step-00000006.pt"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_STORED) as archive:
        with archive.open("archive/data/0", "w", force_zip64=True) as f:
            for _ in range(24):
                f.write(bytes(1 << 20))
    with pytest.raises(OversizedCheckpoint, match=f"^checkpoint {big}: it unpacks to 24 MiB, more than a"
                                                  " checkpoint of this model holds, at most 18 MiB$"):
        load_checkpoint(big, max_unpacked=18 << 20)


def test_eval_refuses_a_config_edited_to_a_huge_vocabulary_before_building_the_model(trained, tmp_path, monkeypatch,
                                                                                     capsys):
    import torch

    from reformer_cli import evaluation
    from reformer_cli.model import reformer

    build_model = reformer.build_model

    def guarded(cfg, vocab_size, seq_len):  # so that this test cannot allocate 256 GB even when the check is gone
        if vocab_size > 10**6 and torch.get_default_device().type != "meta":
            raise AssertionError("the model was built from the edited config")
        return build_model(cfg, vocab_size, seq_len)

    monkeypatch.setattr(reformer, "build_model", guarded)
    monkeypatch.setattr(evaluation, "build_model", guarded)  # evaluation.py's name for it
    monkeypatch.chdir(tmp_path)
    saved = torch.load(trained / "checkpoints" / "step-00000004.pt", weights_only=True)
    saved["config"]["task"]["vocab_size"] = 10**9
    edited = tmp_path / "edited.pt"
    torch.save(saved, edited)
    before = snapshot(tmp_path)
    began = time.perf_counter()
    code, err = in_process(["eval", f"checkpoint={edited}", "output=eval.json", "progress=none"], capsys)
    assert code == 2
    assert one_error_line(err) == (f"error: checkpoint {edited} does not fit its own config (embed.weight: [128, 64]"
                                   " stored, [1000000000, 64] by the config): it was edited or damaged")
    assert time.perf_counter() - began < 5
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------ 3. history


GARBAGE = [b"{not json", b"[1, 2]", b'{"step": "four", "split": "train"}', b"\xff\xfe not utf-8"]


def test_metrics_are_read_tolerantly_and_bad_lines_are_set_aside(tmp_path, caplog):
    from reformer_cli.records import MetricsLog

    path = tmp_path / "metrics.jsonl"
    good = [b'{"step": 1, "split": "train"}', b'{"step": 2, "split": "train"}', b'{"step": 3, "split": "train"}']
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join([good[0], *GARBAGE, good[1], b"", good[2]]) + b"\n")
    log = MetricsLog(path)
    assert [r["step"] for r in log.read()] == [1, 2, 3]
    with caplog.at_level("WARNING", logger="reformer"):
        log.truncate_after(2)
    assert path.read_bytes() == b"".join(line + b"\n" for line in good[:2])
    assert (tmp_path / "metrics.rejected.jsonl").read_bytes() == b"".join(line + b"\n" for line in GARBAGE)
    assert caplog.messages == [f"{path}: 4 line(s) that are not metrics records (not JSON objects with an integer"
                               f" step) were kept in {tmp_path / 'metrics.rejected.jsonl'}"]


def test_resume_keeps_every_line_around_a_malformed_one(trained, untouched, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    lines = (trained / "metrics.jsonl").read_bytes().splitlines()
    assert len(lines) >= 4
    (run / "metrics.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join([lines[0], *GARBAGE, *lines[1:]]) + b"\n")
    code, err = in_process(["run", *BASE, "trainer.max_steps=4", "trainer.ckpt_every=2", "trainer.log_every=1",
                            "resume=auto", f"hydra.run.dir={run}"], capsys)
    assert code in (0, None), err
    assert (run / "metrics.jsonl").read_bytes().splitlines() == lines  # resumed at step 4: every line kept
    assert (run / "metrics.rejected.jsonl").read_bytes().splitlines() == GARBAGE
    assert "4 line(s) that are not metrics records" in (run / "reformer.log").read_text()


def test_a_new_run_into_a_folder_with_records_but_no_checkpoint_is_refused(trained, untouched, tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.rmtree(run / "checkpoints")
    records = {name: (run / name).read_bytes() for name in ("config.yaml", "metrics.jsonl", "summary.json")}
    code, err = in_process(["run", *BASE, "trainer.max_steps=2", "trainer.lr=0.01", f"hydra.run.dir={run}"], capsys)
    assert code == 2
    assert one_error_line(err) == (f"error: run folder {run} already holds a run's records (config.yaml,"
                                   " metrics.jsonl, summary.json): pass resume=auto to continue it, or choose a"
                                   " new folder")
    assert {name: (run / name).read_bytes() for name in records} == records
    assert not (run / "checkpoints").exists()


def negative_step_checkpoint(trained: Path, where: Path) -> None:
    """The step-4 checkpoint with its step edited to -5, written to `where`."""
    import torch

    saved = torch.load(trained / "checkpoints" / "step-00000004.pt", weights_only=True)
    saved["state"]["step"] = -5
    torch.save(saved, where)


def test_a_checkpoint_with_a_negative_step_is_skipped(trained, untouched, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    newest = run / "checkpoints" / "step-00000004.pt"
    negative_step_checkpoint(trained, newest)
    reference = [json.loads(line)["step"] for line in (trained / "metrics.jsonl").read_text().splitlines()]
    code, err = in_process(["run", *BASE, "trainer.max_steps=4", "trainer.ckpt_every=2", "trainer.log_every=1",
                            "resume=auto", f"hydra.run.dir={run}"], capsys)
    assert code in (0, None), err
    assert f"resume: skipping {newest} (its step is not an integer >= 0 (-5))" in (run / "reformer.log").read_text()
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == reference
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-00000002.pt", "step-00000004.pt", "step-00000004.pt.unusable"]


def test_resuming_from_a_file_with_a_negative_step_is_one_line(trained, untouched, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    edited = tmp_path / "edited.pt"
    negative_step_checkpoint(trained, edited)
    code, err = in_process(["run", *BASE, "trainer.max_steps=4", f"resume={edited}", "hydra.run.dir=run"], capsys)
    assert code == 2
    assert one_error_line(err) == (f"error: cannot resume from {edited}: it is not a run folder, nor a usable"
                                   " checkpoint (its step is not an integer >= 0 (-5))")
    assert not list((tmp_path / "run").rglob("step-*"))


# ------------------------------------------------------------------------------ 4. permissions


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_records_are_as_readable_as_the_umask_allows(umask, mode, tmp_path):
    import torch

    from reformer_cli.checkpointer import save_checkpoint
    from reformer_cli.records import MetricsLog, write_json_atomic, write_text_atomic

    previous = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "config.yaml", "a: 1\n")
        write_json_atomic(tmp_path / "summary.json", {"a": 1})
        MetricsLog(tmp_path / "metrics.jsonl").append({"step": 1, "split": "train"})
        MetricsLog(tmp_path / "metrics.jsonl").truncate_after(1)  # rewritten atomically
        save_checkpoint(tmp_path, 1, {"w": torch.zeros(2)}, keep_last=1)
    finally:
        os.umask(previous)
    written = ["config.yaml", "summary.json", "metrics.jsonl", "checkpoints/step-00000001.pt"]
    assert {name: oct((tmp_path / name).stat().st_mode & 0o777) for name in written} == {
        name: oct(mode) for name in written}


def test_a_run_folder_s_files_share_one_mode(trained):
    """A real run under the test's umask (usually 022): records, .hydra/ and the log alike."""
    names = ["config.yaml", "metrics.jsonl", "summary.json", "reformer.log", ".hydra/config.yaml",
             "checkpoints/step-00000004.pt"]
    assert len({(trained / name).stat().st_mode & 0o777 for name in names}) == 1
