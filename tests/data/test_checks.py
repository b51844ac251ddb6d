"""What a run start (Task.check_data) and `reformer data verify` catch, each in one line."""

from __future__ import annotations

import json

import pytest

from reformer_cli.commands import data as data_command
from reformer_cli.data.bytes import prepare_enwik8
from reformer_cli.errors import DataError
from reformer_cli.tasks import build_task

from .conftest import enwik8_task
from .formats import enwik8_zip, text_bytes


@pytest.fixture
def prepared(tmp_path):
    folder = tmp_path / "data"
    source = enwik8_zip(tmp_path / "enwik8.zip", text_bytes(25_000))
    prepare_enwik8(enwik8_task(folder), source=str(source), verify=False)
    return folder


def check(folder, *extra):
    cfg = enwik8_task(folder)
    for override in extra:
        key, value = override.split("=")
        cfg[key] = value
    build_task(cfg, seed=0).check_data()


def test_no_data_says_where_it_looked_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("REFORMER_DATA_DIR", str(tmp_path))
    from ..conftest import compose

    with pytest.raises(DataError) as err:
        build_task(compose(["task=enwik8"]).task, seed=0).check_data()
    message = str(err.value)
    assert str(tmp_path / "enwik8") in message and "`reformer data prepare task=enwik8`" in message
    assert "http://mattmahoney.net/dc/enwik8.zip" in message and "\n" not in message


def test_truncated_split_is_named(prepared):
    check(prepared)
    data = (prepared / "valid.bin").read_bytes()
    (prepared / "valid.bin").write_bytes(data[:-10])
    with pytest.raises(DataError, match=rf"{prepared / 'valid.bin'} is truncated or replaced: 2,990 bytes, the manifest says 3,000; rerun `reformer data prepare task=enwik8 .*--force`"):
        check(prepared)


def test_missing_split_is_named(prepared):
    (prepared / "test.bin").unlink()
    with pytest.raises(DataError, match=rf"{prepared / 'test.bin'} is missing"):
        check(prepared)


def test_corrupted_split_is_named_at_run_start_unless_only_sizes_are_checked(prepared, capsys):
    data = bytearray((prepared / "train.bin").read_bytes())
    data[123] ^= 1
    (prepared / "train.bin").write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"{prepared / 'train.bin'} is corrupted: its sha256 .* differs"):
        check(prepared)  # verify=auto: small data is hashed at every start
    check(prepared, "verify=size")  # size only: what a 16 GB imagenet64 gets at run start
    args = ["verify", "task=enwik8", f"task.data_dir={prepared}", "task.split_sizes=[20000,3000,2000]"]
    with pytest.raises(SystemExit) as exit_:
        data_command.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "train.bin is corrupted" in err and len(err.splitlines()) == 1


def test_verify_reports_ok_and_the_skipped_checks(prepared, capsys):
    assert data_command.main(["verify", "task=enwik8", f"task.data_dir={prepared}",
                              "task.split_sizes=[20000,3000,2000]"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {prepared}") and "SKIPPED" in out


def test_verify_of_a_users_own_text_file_claims_nothing_official(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"a user's own words " * 200)
    args = ["task=text", f"task.path={corpus}", f"task.data_dir={tmp_path / 'prepared'}"]
    assert data_command.main(["prepare", *args]) == 0
    assert data_command.main(["verify", *args]) == 0
    out = capsys.readouterr().out.splitlines()[-1]
    assert out.startswith("ok: ") and "official checks passed" not in out and "no official checksum" in out


def test_manifest_that_does_not_match_or_cannot_be_read(prepared):
    with pytest.raises(DataError, match=r"prepared with split_sizes=\[20000, 3000, 2000\], the config asks for \[90000000"):
        build_task(enwik8_task(prepared, [90_000_000, 5_000_000, 5_000_000]), seed=0).check_data()
    manifest = prepared / "manifest.json"
    manifest.write_text(manifest.read_text()[:50])
    with pytest.raises(DataError, match=rf"{manifest} cannot be read"):
        check(prepared)
    manifest.write_text(json.dumps({"format": 1, "task": "text", "splits": {}}))
    with pytest.raises(DataError, match="it holds task 'text', not 'enwik8'"):
        check(prepared)


def test_data_command_rejects_what_it_cannot_use(tmp_path, capsys):
    cases = [
        (["prepare"], "name the dataset"),
        (["prepare", "task=synthetic"], "needs no data"),
        (["prepare", "task=enwik8", "trainer.lr=1"], "only task=NAME and task.KEY=VALUE"),
        (["prepare", "task=enwik8", "task.nonsense=1"], "task.nonsense"),
        (["prepare", "task=text", f"task.path={tmp_path}/x.txt", "--source", "y"], "--source is for task=enwik8"),
        (["prepare", "task=text"], "task=text needs task.path=FILE"),
        (["verify", "task=text"], "task=text needs task.path=FILE"),
        (["check", "task=enwik8"], "unknown data action 'check'"),
    ]
    for args, expected in cases:
        with pytest.raises(SystemExit) as exit_:
            data_command.main(args)
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and len(err.splitlines()) == 1 and expected in err, (args, err)
