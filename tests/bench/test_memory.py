"""`reformer bench memory` on CPU: the table, its markdown / JSON records, OOM as a result, errors."""

from __future__ import annotations

import json

import pytest
import torch

from reformer_cli.bench import memory

from ..conftest import run_cli

SMALL = ["--d-model", "32", "--d-ff", "64", "--heads", "2", "--vocab", "64", "--length", "64", "--depths", "1,4"]


def test_memory_table_and_records(tmp_path, capsys):
    md, js = tmp_path / "results" / "memory.md", tmp_path / "memory.json"
    assert memory.main([*SMALL, "--device", "cpu", "--markdown", str(md), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "standard" in out and "reversible" in out and "saved for backward" in out
    record = json.loads(js.read_text())
    assert record["device"].endswith("(cpu)") and record["date"] and record["setting"]["length"] == 64
    rows = {(r["layer"], r["depth"]): r for r in record["results"]}
    assert set(rows) == {("standard", 1), ("standard", 4), ("reversible", 1), ("reversible", 4)}
    assert all(r["status"] == "ok" and r["peak_bytes"] is None for r in rows.values())  # no peak on CPU
    assert rows[("standard", 4)]["saved_bytes"] > 2.5 * rows[("standard", 1)]["saved_bytes"]
    assert rows[("reversible", 4)]["saved_bytes"] <= 1.1 * rows[("reversible", 1)]["saved_bytes"]
    text = md.read_text()
    assert record["device"] in text and record["date"] in text and "reformer bench memory" in text
    assert "| reversible | 4 |" in text


def test_every_attention_type_is_an_option_built_and_described_by_its_spec(tmp_path):
    """--attention takes the registry's names; the options reach the type's config (local attention
    keeps more for backward with longer chunks: its window weights grow with them), and the page
    states each one's settings in its spec's words."""
    from reformer_cli.attention.registry import specs

    choices = next(a.choices for a in memory.parser()._actions if a.dest == "attention")
    assert choices == sorted(specs()) and "local" in choices
    saved, pages = {}, {}
    for attention, chunk in (("full", 16), ("local", 16), ("local", 32)):
        md, js = tmp_path / f"{attention}{chunk}.md", tmp_path / f"{attention}{chunk}.json"
        assert memory.main([*SMALL, "--depths", "1", "--layers", "standard", "--device", "cpu", "--attention",
                            attention, "--chunk-length", str(chunk), "--markdown", str(md), "--json", str(js)]) == 0
        saved[attention, chunk] = json.loads(js.read_text())["results"][0]["saved_bytes"]
        pages[attention, chunk] = md.read_text()
    assert saved["local", 16] < saved["local", 32]
    assert "attention local, chunk 16, length 64" in pages["local", 16]
    assert "attention full, length 64" in pages["full", 16]


def test_lsh_attention_reversible_memory_does_not_grow_with_depth(tmp_path):
    js = tmp_path / "lsh.json"
    args = [*SMALL, "--attention", "lsh", "--chunk-length", "16", "--layers", "reversible", "--device", "cpu"]
    assert memory.main([*args, "--json", str(js)]) == 0
    rows = {r["depth"]: r for r in json.loads(js.read_text())["results"]}
    assert rows[1]["status"] == rows[4]["status"] == "ok"
    assert rows[4]["saved_bytes"] <= 1.1 * rows[1]["saved_bytes"]


def test_out_of_memory_is_a_result(monkeypatch, tmp_path, capsys):
    real = memory.training_step

    def step(model, *args, **kwargs):
        if len(model.stack.blocks) == 4 and kwargs.get("meter") is not None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(memory, "training_step", step)
    js = tmp_path / "m.json"
    assert memory.main([*SMALL, "--layers", "standard", "--device", "cpu", "--json", str(js)]) == 0
    statuses = [(r["depth"], r["status"]) for r in json.loads(js.read_text())["results"]]
    assert statuses == [(1, "ok"), (4, "OOM")]
    assert "OOM" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--depths", "2,x"], ["--depths"]),
        (["--layers", "standard,rev"], ["layers"]),
        (["--d-model", "30", "--heads", "4"], ["model.d_model=30"]),
        (["--ff-chunks", "0"], ["model.ff_chunks=0"]),
    ],
)
def test_bad_options_are_one_line_errors(args, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        memory.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    for word in words:
        assert word in err


def test_cuda_without_a_gpu_is_a_one_line_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit):
        memory.main([*SMALL, "--device", "cuda"])
    assert "no CUDA device" in capsys.readouterr().err


def test_cli_entry_point(tmp_path):
    out = run_cli(["bench", "memory", *SMALL, "--depths", "1", "--layers", "reversible"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "reversible" in out.stdout


@pytest.mark.gpu
def test_cuda_peak_is_reported():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    results = memory.run(memory.parser().parse_args([*SMALL, "--device", "cuda", "--precision", "bf16"]), [])
    assert all(r.status == "ok" and r.peak_bytes > 0 for r in results)


def test_memory_reports_the_process_peak_rss_rise_and_the_step_spread(tmp_path, capsys):
    """Beside the bytes saved for backward (labelled as not the process's memory): the rise of the
    process's peak RSS during the step, and the step time's median, min-max and repeats."""
    js, md = tmp_path / "m.json", tmp_path / "m.md"
    assert memory.main([*SMALL, "--depths", "1", "--layers", "standard", "--device", "cpu", "--repeats", "3",
                        "--json", str(js), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "not the process" in out and "peak RSS rise (MiB)" in out and "min-max" in out
    (row,) = json.loads(js.read_text())["results"]
    assert row["repeats"] == 3 and row["seconds_min"] <= row["seconds"] <= row["seconds_max"]
    assert isinstance(row["rss_rise_bytes"], int) and row["rss_rise_bytes"] >= 0
    text = md.read_text()
    assert "not the process's memory" in text and "ru_maxrss" in text and "one process for all rows" in text


def test_memory_in_a_fresh_process_per_row(tmp_path):
    js = tmp_path / "m.json"
    assert memory.main([*SMALL, "--depths", "1", "--layers", "reversible", "--device", "cpu", "--fresh-process",
                        "--json", str(js)]) == 0
    record = json.loads(js.read_text())
    (row,) = record["results"]
    assert row["status"] == "ok" and row["saved_bytes"] > 0 and row["rss_rise_bytes"] >= 0
    assert record["rss"] == "each row in a fresh process"
