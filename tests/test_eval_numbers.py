"""One number per evaluation: the periodic estimate and the final whole-split evaluation never share
a name, and the final number is the same in the done line, summary.json, metrics.jsonl, sweep.md
and W&B's run summary; the final evaluation shows its progress and a short run caps it;
`trainer.keep_best` keeps the best periodic evaluation's checkpoint; `trainer.early_stop` stops;
`experiment=debug` runs any configuration in seconds.

Every run is in-process and tiny (TINY, a few steps)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from reformer_cli.eval_plan import SHORT_RUN_FINAL_BATCHES, SHORT_RUN_STEPS, final_batches, periodic_split

from .conftest import TINY, compose, in_process, metrics_of
from .test_sweeps import wandb_records

# 32 validation sequences in batches of 8: 4 batches; the periodic evaluation takes 1 (an estimate)
SMALL = [*TINY, "trainer.max_steps=4", "trainer.log_every=2", "trainer.eval_every=2", "trainer.eval_batches=1"]


def done_line(run_dir: Path) -> str:
    """The last `done in ...` line of the run's log file (what the console showed)."""
    lines = [line for line in (run_dir / "reformer.log").read_text().splitlines() if "done in " in line]
    assert lines, (run_dir / "reformer.log").read_text()[-2000:]
    return lines[-1]


def wandb_offline(run_dir: Path) -> tuple[dict, list[dict]]:
    """(the run summary's values, the history rows) of a W&B offline run, from its .wandb file. The
    W&B service of this process is shut down first: it may still hold the file's last records (a
    command's process exits, which does the same)."""
    import wandb
    from wandb.proto import wandb_internal_pb2 as pb

    wandb.teardown()

    (log,) = run_dir.glob("wandb/offline-run-*/*.wandb")
    summary, history = {}, []
    for raw in wandb_records(log):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                summary["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
        elif kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
    return summary, history


def check_one_final_number(run_dir: Path) -> float:
    """The final valid accuracy, after checking it is the same number in every place that shows it,
    and that `best` is over the periodic estimates only."""
    summary = json.loads((run_dir / "summary.json").read_text())
    final = summary["final"]["valid"]
    lines = metrics_of(run_dir)
    (final_line,) = [r for r in lines if r.get("final")]
    assert final_line["split"] == "valid" and final_line["step"] == summary["steps"]
    assert {k: final_line[k] for k in final} == final
    assert f"valid accuracy {final['accuracy']:.4g}" in done_line(run_dir)

    wandb_summary, history = wandb_offline(run_dir)
    assert wandb_summary.get("final/valid/accuracy") == final["accuracy"], (sorted(wandb_summary), history[-2:])
    assert wandb_summary["final/valid/loss"] == final["loss"]
    assert [row["valid/accuracy"] for row in history if "valid/accuracy" in row] == [final["accuracy"]]

    estimates = [r for r in lines if r["split"] == "valid_estimate"]
    assert [r["step"] for r in estimates] == [2, 4] and all(r["batches"] == 1 for r in estimates)
    best = max(estimates, key=lambda r: (r["accuracy"], -r["step"]))  # the first of the highest
    assert summary["best"] == {"accuracy": best["accuracy"], "step": best["step"], "split": "valid_estimate",
                               "batches": 1}
    return final["accuracy"]


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", "")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in
    return tmp_path


def test_the_final_number_is_the_same_everywhere_for_a_run_and_a_sweep(offline_wandb, capsys):
    tmp_path = offline_wandb
    wandb_args = [a for a in SMALL if a != "logger=none"] + ["logger=wandb"]
    code, err = in_process(["run", *wandb_args, "hydra.run.dir=run"], capsys)
    assert code in (0, None), err
    check_one_final_number(tmp_path / "run")

    code, err = in_process(["run", "-m", *wandb_args, "seed=0,1", "hydra.sweep.dir=sweep"], capsys)
    assert code in (0, None), err
    table = (tmp_path / "sweep" / "sweep.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| job |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    final_column = columns.index("final valid accuracy")
    for num in (0, 1):
        value = check_one_final_number(tmp_path / "sweep" / str(num))
        (row,) = [line for line in table if line.startswith(f"| {num} | seed={num} |")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[final_column] == f"{value:.4g}"
        assert cells[columns.index("best periodic valid accuracy (step)")].endswith(", estimate)")


def log_lines(run_dir: Path) -> list[str]:
    """The run's log file (Hydra's, the console's lines), one message per line."""
    return (run_dir / "reformer.log").read_text().splitlines()


def test_the_final_evaluation_shows_progress_and_a_short_run_caps_it(tmp_path, monkeypatch, capsys):
    """80 validation batches of 1: a 2-step run evaluates 64 of them at the end, says so, and logs
    its progress; the number is that of evaluating the checkpoint on 64 batches. Set explicitly,
    trainer.final_eval_batches=0 takes the whole split."""
    monkeypatch.chdir(tmp_path)
    args = [*TINY, "task.eval_sequences=80", "trainer.eval_batch_size=1", "trainer.max_steps=2",
            "trainer.eval_every=2", "trainer.eval_batches=1"]
    code, err = in_process(["run", *args, "hydra.run.dir=short"], capsys)
    assert code in (0, None), err
    messages = log_lines(tmp_path / "short")
    assert any(m.startswith("final evaluation: 64 batches per split (of 80 in valid): a short run") for m in messages)
    assert "final evaluation on valid: 0/64 batches" in "\n".join(messages)
    assert any(re.match(r"final evaluation on valid: 64/64 batches  elapsed \S+  eta 0:00", m) for m in messages)
    summary = json.loads((tmp_path / "short" / "summary.json").read_text())
    assert summary["final_batches"] == {"valid": 64}
    assert [r["batches"] for r in metrics_of(tmp_path / "short") if r.get("final")] == [64]

    code, err = in_process(["eval", "checkpoint=short", "max_batches=64", "output=e64.json", "progress=none"], capsys)
    assert code in (0, None), err
    assert json.loads((tmp_path / "e64.json").read_text())["metrics"] == summary["final"]["valid"]

    code, err = in_process(["run", *args, "trainer.final_eval_batches=0", "hydra.run.dir=whole"], capsys)
    assert code in (0, None), err
    assert not any("a short run" in m for m in log_lines(tmp_path / "whole"))
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["final_batches"] == {"valid": 80}


def test_sizes_and_names_of_the_evaluations():
    assert final_batches(None, SHORT_RUN_STEPS) == (SHORT_RUN_FINAL_BATCHES, True)
    assert final_batches(None, SHORT_RUN_STEPS + 1) == (0, False)  # a long run: the whole split
    assert final_batches(0, 5) == (0, False) and final_batches(3, 5000) == (3, False)  # set: as set
    assert periodic_split(8, 4) == "valid" and periodic_split(0, None) == "valid"
    assert periodic_split(2, 4) == "valid_estimate" and periodic_split(2, None) == "valid_estimate"


def test_plain_evaluation_lines_and_an_eta_that_counts_the_final_evaluation(monkeypatch, caplog):
    from reformer_cli import progress as progress_module

    monkeypatch.setattr(progress_module, "EVAL_LINE_SECONDS", 0.0)  # a line per batch
    with caplog.at_level(logging.INFO, logger="reformer"):
        count = progress_module.PlainProgress(10, "run").evaluation("final evaluation on valid", 3)
        for done in (1, 2, 3):
            count.advance(done)
        count.finish()
    shown = [re.match(r"final evaluation on valid: (\d)/3 batches", m).group(1) for m in caplog.messages]
    assert shown == ["0", "1", "2", "3", "3"]

    progress = progress_module.PlainProgress(10, "run")
    progress.start(0)
    progress.set_tail(600.0)  # ten minutes of final evaluation after the last step
    assert progress.timing(5)[1] >= 600.0


def test_keep_best_keeps_the_best_checkpoint_and_it_evaluates_to_the_recorded_best(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [*TINY, "trainer.max_steps=6", "trainer.eval_every=1", "trainer.eval_batches=1", "trainer.lr=1e-2",
            "trainer.ckpt_every=1", "trainer.keep_last=1", "trainer.keep_best=true"]
    code, err = in_process(["run", *args, "hydra.run.dir=run"], capsys)
    assert code in (0, None), err
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    estimates = [r for r in metrics_of(run) if r["split"] == "valid_estimate"]
    best = max(estimates, key=lambda r: (r["accuracy"], -r["step"]))  # brute force: the first of the highest
    assert summary["best"]["step"] == best["step"] and summary["best"]["accuracy"] == best["accuracy"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "step-00000006.pt"]

    code, err = in_process(["eval", "checkpoint=run/checkpoints/best.pt", "max_batches=1", "output=best.json",
                            "progress=none"], capsys)
    assert code in (0, None), err
    record = json.loads((tmp_path / "best.json").read_text())
    assert record["step"] == best["step"]
    assert record["metrics"] == {k: best[k] for k in record["metrics"]}

    code, err = in_process(["eval", "checkpoint=run", "max_batches=1", "output=newest.json", "progress=none"], capsys)
    assert code in (0, None), err
    assert json.loads((tmp_path / "newest.json").read_text())["step"] == 6  # a run folder: its newest step

    code, err = in_process(["run", *args, "trainer.max_steps=7", "resume=auto", "hydra.run.dir=run"], capsys)
    assert code in (0, None), err
    assert "resumed from" in (run / "reformer.log").read_text() and "step-00000006.pt" in (run / "reformer.log").read_text()


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path, monkeypatch, capsys):
    """min_delta larger than any change: only the first evaluation improves (on nothing), so with
    patience 2 the run stops after the third evaluation, saves, evaluates and says why."""
    monkeypatch.chdir(tmp_path)
    args = [*TINY, "trainer.max_steps=20", "trainer.eval_every=1", "trainer.eval_batches=1",
            "trainer.early_stop.patience=2", "trainer.early_stop.min_delta=1e9", "hydra.run.dir=run"]
    code, err = in_process(["run", *args], capsys)
    assert code in (0, None), err
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "early_stopped" and summary["steps"] == 3
    assert summary["stop_reason"].startswith("stopped early: valid estimate accuracy did not improve by more than 1e+09 in 2")
    assert [r["step"] for r in metrics_of(run) if r["split"] == "valid_estimate"] == [1, 2, 3]
    assert [r["step"] for r in metrics_of(run) if r.get("final")] == [3]
    assert (run / "checkpoints" / "step-00000003.pt").is_file()
    assert "(stopped early: valid estimate accuracy" in done_line(run)

    # without early stopping the same run goes on (the default is off)
    code, err = in_process(["run", *TINY, "trainer.max_steps=5", "trainer.eval_every=1", "trainer.eval_batches=1",
                            "trainer.early_stop.min_delta=1e9", "hydra.run.dir=plain"], capsys)
    assert code in (0, None), err
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["status"] == "completed"


def test_experiment_debug_runs_synthetic_and_text_in_a_scratch_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = compose(["experiment=debug", "task=text", "task.path=x.txt"])
    assert cfg.trainer.max_steps <= 10 and cfg.trainer.final_eval_batches == 1 and cfg.logger.name == "none"

    fast = ["model=tiny", "trainer.device=cpu", "trainer.progress=plain"]
    code, err = in_process(["run", "experiment=debug", "task=synthetic", *fast], capsys)
    assert code in (0, None), err
    (run,) = (tmp_path / "outputs" / "debug" / "synthetic").iterdir()
    assert json.loads((run / "summary.json").read_text())["steps"] == cfg.trainer.max_steps

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"a few words of a user's own text, again and again. " * 800)
    text = ["task=text", f"task.path={corpus}", f"task.data_dir={tmp_path / 'prepared'}"]
    code, err = in_process(["data", "prepare", *text], capsys)
    assert code in (0, None), err
    code, err = in_process(["run", "experiment=debug", *text, *fast], capsys)
    assert code in (0, None), err
    (run,) = (tmp_path / "outputs" / "debug" / "text").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final_batches"] == {"valid": 1}
