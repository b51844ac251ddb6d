"""`reformer runs` and `reformer compare` (run_records.py, comparison.py): two tiny real runs, plus
folders made by hand for the states a real run is rarely caught in (running, killed, malformed)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import TINY, another_process_holding, in_process


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> Path:
    """outputs/synthetic/ of a full-attention run and an LSH run of 20 steps, evaluated every 10."""
    from reformer_cli.cli import main

    root = tmp_path_factory.mktemp("runs")
    here = os.getcwd()
    os.chdir(root)
    try:
        for attention in (["attention=full"], ["attention=lsh", "attention.n_rounds=2", "attention.chunk_length=8"]):
            args = [a for a in TINY if not a.startswith("attention=")]
            code = main(["run", *args, *attention, "trainer.max_steps=20", "trainer.eval_every=10",
                         "trainer.log_every=5", "trainer.progress=none"])
            assert code in (0, None)
    finally:
        os.chdir(here)
    return root


def runs_json(capsys, args: list[str]) -> tuple[list[dict], str]:
    from reformer_cli.cli import main

    assert main(["runs", *args, "--json"]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_runs_lists_filters_and_sorts(two_runs, capsys, monkeypatch):
    monkeypatch.chdir(two_runs)
    runs, _ = runs_json(capsys, [])
    assert sorted(r["attention"] for r in runs) == ["full", "lsh-2"]
    for r in runs:
        assert r["status"] == "completed" and (r["steps"], r["max_steps"]) == (20, 20)
        assert r["metric"] == "accuracy" and 0 <= r["final"] <= 1 and 0 <= r["best"] <= 1
        assert Path(r["folder"]).name.endswith("_" + r["name"])  # the folder carries the run's name
    assert [r["time"] for r in runs] == sorted((r["time"] for r in runs), reverse=True)  # newest first
    assert [r["name"] for r in runs_json(capsys, ["--sort", "name"])[0]] == sorted(r["name"] for r in runs)
    assert [r["attention"] for r in runs_json(capsys, ["--attention", "lsh"])[0]] == ["lsh-2"]
    assert [r["attention"] for r in runs_json(capsys, ["--where", "attention.n_rounds=2"])[0]] == ["lsh-2"]
    assert runs_json(capsys, ["--task", "enwik8"])[0] == []
    assert len(runs_json(capsys, ["--status", "completed,running"])[0]) == 2
    assert in_process(["runs"], capsys)[0] == 0  # the table


def test_runs_reads_running_killed_and_malformed_folders(two_runs, tmp_path, capsys):
    source = next((two_runs / "outputs" / "synthetic").iterdir())
    made = {}
    for name in ("running", "killed", "failed", "bad-summary", "bad-config"):
        made[name] = tmp_path / "outputs" / name
        shutil.copytree(source, made[name])
    for name in ("running", "killed", "failed"):
        (made[name] / "summary.json").unlink()
    shutil.rmtree(made["failed"] / "checkpoints")
    (made["bad-summary"] / "summary.json").write_text("{not json")
    (made["bad-config"] / "config.yaml").write_text("[unclosed")
    with another_process_holding(made["running"]):
        runs, err = runs_json(capsys, [str(tmp_path / "outputs")])
    status = {Path(r["folder"]).name: r["status"] for r in runs}
    assert status == {"running": "running", "killed": "interrupted", "failed": "failed"}
    assert all(r["best"] is not None for r in runs)  # from metrics.jsonl when there is no summary
    assert "bad-summary" in err and "bad-config" in err and "Traceback" not in err


def test_runs_of_a_missing_folder_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["runs"], capsys)
    assert code == 2 and err.startswith("error: no such folder: outputs") and err.count("\n") == 1
    code, err = in_process(["runs", str(tmp_path), "--where", "nokey"], capsys)
    assert code == 2 and "KEY=VALUE" in err
    code, err = in_process(["runs", str(tmp_path), "--status", "completed,bogus"], capsys)
    assert code == 2 and err.startswith("error: --status 'bogus': not a status (choose from completed,") \
        and err.count("\n") == 1


def test_compare_writes_the_plot_and_the_table(two_runs, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp"
    code, err = in_process(["compare", str(two_runs / "outputs" / "synthetic"), "--out", str(out), "--x", "tokens"],
                           capsys)
    assert code == 0, err
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    table = (out / "compare.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| synthetic-")]
    assert len(rows) == 2 and "| 20/20 |" in rows[0] and "| 5,120 |" in rows[0]  # 20 steps x 8 x 32 tokens
    code, err = in_process(["compare", str(two_runs / "outputs" / "synthetic"), "--out", str(out)], capsys)
    assert code == 2 and "--force" in err  # never overwrites by default
    code, err = in_process(["compare", str(two_runs / "outputs"), "--out", str(out), "--metric", "nope", "--force"],
                           capsys)
    assert code == 2 and "no run records it" in err and "accuracy" in err


def test_compare_into_a_file_is_one_line_and_leaves_it(two_runs, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("kept\n")
    code, err = in_process(["compare", str(two_runs / "outputs" / "synthetic"), "--out", str(taken), "--no-plot"],
                           capsys)
    assert code == 2 and err == f"error: --out {taken} is a file, not a folder: compare.md cannot be written in it\n"
    assert taken.read_text() == "kept\n"
