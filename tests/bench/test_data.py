"""`reformer bench data`: windows per second from a memory-mapped split, through the task's code."""

from __future__ import annotations

import re

from reformer_cli.bench import data as bench_data
from reformer_cli.commands import bench


def test_bench_data_prints_windows_per_second(capsys):
    assert bench.main(["data", "--size-mb", "2", "--seq-len", "4096", "--seconds", "0.2"]) == 0
    line = capsys.readouterr().out.strip()
    assert re.search(r"seq_len 4,096, batch 8: [\d,]+ windows/s \(min-max [\d,]+-[\d,]+ over 5 repeats\), [\d,]+ MB/s", line), line
    assert bench_data.main(["--task", "imagenet64", "--size-mb", "1", "--seq-len", "3072", "--seconds", "0.2"]) == 0
    assert "imagenet64 train windows" in capsys.readouterr().out


def test_bench_data_reads_a_prepared_folder(tmp_path, capsys):
    from reformer_cli.data.bytes import prepare_text

    from ..conftest import compose
    from ..data.formats import text_bytes

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(text_bytes(50_000))
    prepare_text(compose(["task=text", f"task.path={corpus}", f"task.data_dir={tmp_path / 'p'}"]).task)
    assert bench.main(["data", "--task", "text", "--data-dir", str(tmp_path / "p"), "--seq-len", "1024",
                       "--seconds", "0.2"]) == 0
    assert f"({tmp_path / 'p'})" in capsys.readouterr().out


def test_bench_data_reports_the_spread_over_repeats(tmp_path, capsys):
    js = tmp_path / "d.json"
    assert bench_data.main(["--size-mb", "1", "--seq-len", "1024", "--seconds", "0.3", "--repeats", "3",
                            "--json", str(js)]) == 0
    line = capsys.readouterr().out
    assert re.search(r"windows/s \(min-max [\d,]+-[\d,]+ over 3 repeats\)", line), line
    import json

    record = json.loads(js.read_text())
    assert record["repeats"] == 3 and record["kind"] == "data"
    assert record["windows_per_s_min"] <= record["windows_per_s"] <= record["windows_per_s_max"]


def test_bench_data_on_an_unprepared_folder_names_the_prepare_command(tmp_path, capsys):
    import pytest

    empty = tmp_path / "nothing here"
    empty.mkdir()
    with pytest.raises(SystemExit) as exit_:
        bench.main(["data", "--data-dir", str(empty), "--seconds", "0.1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert f"reformer data prepare task=enwik8 task.data_dir={empty}" in err
    assert "task.prepared_dir=" in bench_data.prepare_command("imagenet64", empty)
