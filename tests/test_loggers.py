"""The loggers besides W&B (file_loggers.py) and several at once (`logger=[...]`, loggers.py): tiny
real runs, read back with TensorBoard's own reader and the csv module."""

from __future__ import annotations

import csv
import sys

import pytest

from .conftest import TINY, compose, in_process, metrics_of

BASE = [a for a in TINY if not a.startswith("logger=")] + [
    "trainer.max_steps=6", "trainer.log_every=2", "trainer.eval_every=3", "trainer.progress=none"]


def logged(run_dir) -> dict[str, dict[int, float]]:
    """{`split/key`: {step: value}} of metrics.jsonl, as the loggers are given it."""
    values: dict[str, dict[int, float]] = {}
    for r in metrics_of(run_dir):
        for key, value in r.items():
            if key not in ("step", "split") and isinstance(value, float):
                values.setdefault(f"{r['split']}/{key}", {})[r["step"]] = value
    return values


def tensorboard_scalars(run_dir) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def csv_values(run_dir) -> dict[str, dict[int, float]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    values: dict[str, dict[int, float]] = {}
    for row in rows:
        values.setdefault(row["metric"], {})[int(row["step"])] = float(row["value"])
    return values


@pytest.mark.parametrize("choice", ["tensorboard", "csv", "[tensorboard,csv]"])
def test_file_loggers_write_what_metrics_jsonl_holds(choice, tmp_path, capsys):
    if "tensorboard" in choice:
        pytest.importorskip("tensorboard")
    run_dir = tmp_path / "run"
    code, err = in_process(["run", *BASE, f"logger={choice}", f"hydra.run.dir={run_dir}"], capsys)
    assert code in (0, None), err
    expected = logged(run_dir)
    assert {"train/loss", "valid/loss", "valid/accuracy"} <= set(expected)
    readers = {"tensorboard": tensorboard_scalars, "csv": csv_values}
    for name, read in readers.items():
        if name not in choice:
            assert not (run_dir / ("tensorboard" if name == "tensorboard" else "metrics.csv")).exists()
            continue
        got = read(run_dir)
        for key, steps in expected.items():
            assert set(got[key]) == set(steps), (name, key)
            assert got[key] == pytest.approx(steps, rel=1e-6), (name, key)  # TensorBoard stores float32


def test_a_list_of_loggers_switches_each_on():
    cfg = compose(["logger=[wandb,csv]"]).logger
    assert (cfg.wandb, cfg.csv, cfg.tensorboard) == (True, True, False)
    cfg = compose(["logger=none"]).logger
    assert not (cfg.wandb or cfg.csv or cfg.tensorboard)


def test_a_missing_tensorboard_is_one_line(tmp_path, monkeypatch):
    from reformer_cli.errors import UserError
    from reformer_cli.file_loggers import TensorboardLogger

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard raises ImportError
    with pytest.raises(UserError, match=r"pip install 'reformer-cli\[tensorboard\]'"):
        TensorboardLogger(tmp_path)


def test_the_csv_logger_continues_a_resumed_run_without_repeating_rows(tmp_path):
    from reformer_cli.file_loggers import CsvLogger
    from reformer_cli.records import MetricsLog

    first = CsvLogger(tmp_path)
    for step in (1, 2, 3):
        first.log({"train/loss": float(step)}, step)
    MetricsLog(tmp_path / "metrics.jsonl").append({"step": 2, "split": "train", "loss": 2.0})  # checkpoint at 2
    second = CsvLogger(tmp_path)
    second.log({"train/loss": 30.0}, 3)
    assert csv_values(tmp_path)["train/loss"] == {1: 1.0, 2: 2.0, 3: 30.0}
