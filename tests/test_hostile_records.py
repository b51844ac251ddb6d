"""Hostile records: curated records, run folders, checkpoints and output paths made to crash a
command after its work or to leave a traceback. Each case asserts the exact one line (an
`error: ...` with exit 2, or the line of a skipped record) and what was (not) written.

Everything runs in-process and stops at validation or reads fixture records; no case trains for
more than a few tiny steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import in_process
from .test_hostile import BASE, one_error_line, snapshot, trained  # noqa: F401 - trained is a fixture

TABLE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "table" / "runs"


# ------------------------------------------------------------------------------ 1. curated records


@pytest.mark.parametrize("case, text, why", [
    ("list", "[1, 2]", "it is a list, not a JSON object"),
    ("metric", None, "its metrics.accuracy is a string, not a number"),
    ("deep", "[" * 10_000 + "]" * 10_000, "its JSON is nested too deeply"),
    ("broken", '{"schema": 1,', "it is not readable JSON (JSONDecodeError: Expecting property name enclosed in"
                                " double quotes: line 1 column 14 (char 13))"),
])
def test_a_damaged_record_is_skipped_and_the_pages_still_build(case, text, why, tmp_path, monkeypatch, capsys):
    shutil.copytree(TABLE_FIXTURES, tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    record = Path("runs/quick/table2/lsh-1__lsh-4.json")
    if text is None:
        edited = json.loads(record.read_text())
        edited["metrics"]["accuracy"] = "high"
        text = json.dumps(edited)
    kept = record.read_text()
    record.unlink()
    assert in_process(["table", "--runs", "runs", "--out", "without", "--no-plots"], capsys) == (0, "")
    record.write_text(text)
    code, err = in_process(["table", "--runs", "runs", "--out", "out", "--no-plots"], capsys)
    assert code == 0
    assert err == f"skipped {record}: {why}\n"
    # the pages are those of the records without it (its cell shows missing)
    pages = sorted(p.name for p in Path("without").iterdir())
    assert "table2.md" in pages and sorted(p.name for p in Path("out").iterdir()) == pages
    for page in pages:
        assert (Path("out") / page).read_text() == (Path("without") / page).read_text(), page
    assert kept != text


# ------------------------------------------------------------------------------ 2. a record that is a folder


@pytest.mark.parametrize("how", ["hydra.run.dir", "resume=auto", "resume=<folder>"])
def test_a_metrics_log_that_is_a_folder_is_one_line_and_nothing_changes(how, trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    if how == "hydra.run.dir":
        run.mkdir()
    else:
        shutil.copytree(trained, run)
        (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()
    (run / "metrics.jsonl" / "kept.txt").write_text("kept\n")
    before = snapshot(run)
    args = {"hydra.run.dir": ["hydra.run.dir=run"], "resume=auto": ["resume=auto", "hydra.run.dir=run"],
            "resume=<folder>": ["resume=run"]}[how]
    code, err = in_process(["run", *BASE, "trainer.max_steps=6", "trainer.ckpt_every=2", *args], capsys)
    assert code == 2
    assert one_error_line(err) == ("error: run/metrics.jsonl is a folder, not a file: the run's records cannot be"
                                   " written there; remove it")
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# ------------------------------------------------------------------------------ 3. output paths

linux_only = pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs /sys (EACCES even for root)")


@linux_only
@pytest.mark.parametrize("case", ["folder", "missing"])
def test_reproduce_refuses_a_pack_path_it_cannot_write_before_any_step(case, tmp_path, monkeypatch, capsys):
    from reformer_cli.reproduce import runner

    monkeypatch.setattr(runner.Reproduction, "run", lambda self: pytest.fail("a step ran"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = {"folder": tmp_path, "missing": tmp_path / "missing" / "state.tar.gz"}[case]
    code, err = in_process(["reproduce", "--profile", "smoke", "--pack", str(path)], capsys)
    assert code == 2
    assert one_error_line(err) == {
        "folder": f"error: --pack {tmp_path}: it is a folder; give the archive's file name (FILE.tar.gz)",
        "missing": f"error: --pack {path}: the folder {tmp_path / 'missing'} does not exist",
    }[case]
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert not (tmp_path.parent / f".{tmp_path.name}.tmp").exists()  # nothing beside a folder given as a file


@linux_only
def test_reproduce_refuses_a_pack_path_in_a_folder_it_cannot_write(tmp_path, monkeypatch, capsys):
    from reformer_cli.reproduce import runner

    monkeypatch.setattr(runner.Reproduction, "run", lambda self: pytest.fail("a step ran"))
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["reproduce", "--profile", "smoke", "--pack", "/sys/state.tar.gz"], capsys)
    assert code == 2
    assert one_error_line(err) == "error: cannot write /sys/state.tar.gz: Permission denied"
    assert list(tmp_path.iterdir()) == []


@linux_only
@pytest.mark.parametrize("bench", ["speed", "memory", "step", "data"])
@pytest.mark.parametrize("case", ["folder", "unwritable"])
def test_a_benchmark_refuses_a_json_path_it_cannot_write_before_measuring(bench, case, tmp_path, monkeypatch, capsys):
    import importlib

    module = importlib.import_module(f"reformer_cli.bench.{bench}")
    if bench == "data":
        monkeypatch.setattr(module, "fake_prepared", lambda *a, **k: pytest.fail("the benchmark ran"))
    else:
        monkeypatch.setattr(module, "run", lambda *a, **k: pytest.fail("the benchmark ran"))
    monkeypatch.chdir(tmp_path)
    path = {"folder": tmp_path, "unwritable": Path("/sys/bench.json")}[case]
    code, err = in_process(["bench", bench, "--json", str(path)], capsys)
    assert code == 2
    assert one_error_line(err) == {"folder": f"error: cannot write {tmp_path}: it is a folder",
                                   "unwritable": "error: cannot write /sys/bench.json: Permission denied"}[case]
    assert list(tmp_path.iterdir()) == []


def test_packing_to_a_folder_leaves_no_temp_file_beside_it(tmp_path):
    from reformer_cli.errors import UserError
    from reformer_cli.reproduce.pack import pack

    target = tmp_path / "tmp"
    target.mkdir()
    with pytest.raises(UserError, match=f"^--pack {target}: it is a folder; give the archive's file name"):
        pack(target, [], [], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # no .tmp.tmp beside it


# ------------------------------------------------------------------------------ 4. summary.json of a reproduce step


@pytest.mark.parametrize("text", ['["completed"]', '"completed"', "[" * 10_000 + "]" * 10_000,
                                  '{"status": "completed", "config": ["trainer"]}'])
def test_a_reproduce_step_whose_summary_is_not_an_object_is_unfinished(text, tmp_path, monkeypatch, capsys):
    from reformer_cli.definitions.experiments import load_experiment
    from reformer_cli.reproduce.runner import Reproduction

    from .reproduce.test_runner import definitions

    monkeypatch.chdir(tmp_path)
    tiny = load_experiment(definitions(tmp_path / "defs") / "tiny.yaml")
    runner = Reproduction("quick", [tiny], outputs=Path("out"), results=Path("results"))
    train = next(s for s in tiny.profile("quick").steps if s.kind == "train")
    evaluation = next(s for s in tiny.profile("quick").steps if s.kind == "eval" and s.evaluates == train.name)
    runner.job(train).claim()
    (runner.job(train).folder / "summary.json").write_text(text)
    assert not runner.job(train).done()
    assert runner.before(runner.job(train)) is None  # it runs again (resuming from its checkpoint)
    assert runner.before(runner.job(evaluation)).message == f"its training run {train.name} did not complete"
    assert [s.name for s in runner.unfinished()] == [train.name]
    err = capsys.readouterr().err
    if text.startswith("{"):
        assert err == ""  # an object whose config is damaged: an unfinished run, no line
    else:
        assert err == f"out/quick/tiny/{train.name}/summary.json is not a JSON object; taking the run as unfinished\n"


def test_a_reproduce_step_whose_summary_says_completed_is_done(tmp_path, monkeypatch, capsys):
    from reformer_cli.definitions.experiments import load_experiment
    from reformer_cli.reproduce.runner import Reproduction

    from .reproduce.test_runner import definitions

    monkeypatch.chdir(tmp_path)
    tiny = load_experiment(definitions(tmp_path / "defs", max_steps=1500) / "tiny.yaml")
    runner = Reproduction("quick", [tiny], outputs=Path("out"), results=Path("results"))
    train = next(s for s in tiny.profile("quick").steps if s.kind == "train")
    runner.job(train).claim()
    (runner.job(train).folder / "summary.json").write_text(json.dumps(
        {"status": "completed", "steps": 1500, "config": {"trainer": {"max_steps": 1500}}}))
    assert runner.job(train).finished()
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------ 5. checkpoint fields of the wrong type or format

WRONG = {  # field -> (value, why the checkpoint is unusable)
    "state": (["step", 4], "its state is a list, not a mapping"),
    "window": ("recent", "its window is a string, not a mapping"),
    "model": ("weights", "its model is a string, not a mapping"),
    "config": ([1, 2], "its config is a list, not a mapping"),
    "model.embed.weight": ([0.5], "its model weight 'embed.weight' is a list, not a tensor"),
    "config.attention": ("lsh", "its config.attention is a string, not a mapping"),
    "format": (2, "its format is 2, not 1, the one this version of reformer reads"),
}


def wrong_checkpoint(trained: Path, field: str, where: Path) -> None:
    """The step-4 checkpoint with `field` (dotted: one level down) set to WRONG[field]'s value."""
    import torch

    saved = torch.load(trained / "checkpoints" / "step-00000004.pt", weights_only=True)
    key, _, sub = field.partition(".")
    if sub:
        saved[key][sub] = WRONG[field][0]
    else:
        saved[key] = WRONG[field][0]
    torch.save(saved, where)


@pytest.mark.parametrize("field", list(WRONG))
def test_resume_skips_a_checkpoint_whose_field_has_the_wrong_type(field, trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    newest = run / "checkpoints" / "step-00000004.pt"
    wrong_checkpoint(trained, field, newest)
    reference = [json.loads(line)["step"] for line in (trained / "metrics.jsonl").read_text().splitlines()]
    code, err = in_process(["run", *BASE, "trainer.max_steps=4", "trainer.ckpt_every=2", "trainer.log_every=1",
                            "resume=auto", f"hydra.run.dir={run}"], capsys)
    assert code in (0, None), err
    assert "Traceback" not in err
    assert f"resume: skipping {newest} ({WRONG[field][1]})" in (run / "reformer.log").read_text()
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == reference
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-00000002.pt", "step-00000004.pt", "step-00000004.pt.unusable"]


@pytest.mark.parametrize("field", list(WRONG))
def test_evaluating_a_checkpoint_whose_field_has_the_wrong_type_is_one_line(field, trained, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.chdir(tmp_path)
    edited = tmp_path / "edited.pt"
    wrong_checkpoint(trained, field, edited)
    before = snapshot(tmp_path)
    code, err = in_process(["eval", f"checkpoint={edited}", "output=eval.json", "progress=none"], capsys)
    assert code == 2
    assert one_error_line(err) == (f"error: checkpoint {edited} is not a usable reformer checkpoint"
                                   f" ({WRONG[field][1]}): it was edited or damaged")
    assert snapshot(tmp_path) == before
