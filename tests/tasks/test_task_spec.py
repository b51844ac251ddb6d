"""A task is one spec in the registry: one registered from a single module and a single config
file trains, evaluates and is recorded under its own name and metric, with no other change."""

from __future__ import annotations

import json

import pytest

from reformer_cli.config import validate
from reformer_cli.errors import ConfigError
from reformer_cli.hydra_entry import compose
from reformer_cli.primitives import task_registry
from reformer_cli.tasks import metric_directions, register_task, task_spec

from ..conftest import REPO, TINY

CONF = REPO / "tests" / "fixtures" / "conf"  # holds task/counting.yaml


def compose_with_counting(overrides: list[str]):
    """The run config of `overrides`, the fixture's config folder searched after conf/."""
    from omegaconf import open_dict

    cfg = compose("config", [*overrides, f"hydra.searchpath=[file://{CONF}]"], hydra_config=True)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture
def counting(monkeypatch):
    """The counting task registered for this test only (the registry is restored after it)."""
    from . import counting_task

    monkeypatch.setattr(task_registry, "_SPECS", dict(task_registry._SPECS))
    return register_task(counting_task.SPEC)


def test_a_task_from_one_module_and_one_config_file_trains_evaluates_and_is_recorded(counting, tmp_path):
    from reformer_cli.evaluation import evaluate_checkpoint
    from reformer_cli.run_records import read_run
    from reformer_cli.train import train

    overrides = [o for o in TINY if not o.startswith("task.")] + [
        "task=counting", "trainer.max_steps=2", "trainer.eval_every=1", "trainer.final_eval_batches=1"]
    cfg = compose_with_counting(overrides)
    validate(cfg)
    assert cfg.task.seq_len == 16 and cfg.task.vocab_size == 11  # the file's value, the schema's default
    summary = train(cfg, tmp_path / "run")
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert summary["task"]["name"] == "counting" and summary["metric"] == "hit_rate"
    assert 0.0 <= summary["final"]["valid"]["hit_rate"] <= 1.0
    assert "hit_rate" in summary["best"]
    run = read_run(tmp_path / "run")
    assert (run.task, run.metric) == ("counting", "hit_rate")

    eval_cfg = compose("eval", [f"checkpoint={tmp_path / 'run'}", "device=cpu", "max_batches=1"])
    record = evaluate_checkpoint(eval_cfg, set(), tmp_path / "eval.json")
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert record["metric"] == saved["metric"] == "hit_rate" and saved["task"]["name"] == "counting"
    assert 0.0 <= saved["metrics"]["hit_rate"] <= 1.0
    assert metric_directions()["hit_rate"] is True  # W&B keeps its maximum


def test_the_task_checks_its_own_config(counting):
    with pytest.raises(ConfigError, match="task.vocab_size=0 must be a positive integer"):
        validate(compose_with_counting(["task=counting", "task.vocab_size=0"]))


def test_an_unregistered_task_is_one_line_naming_the_registered_ones():
    with pytest.raises(ConfigError, match=r"^unknown task 'counting' \(available: synthetic, enwik8, text, imagenet64"):
        task_spec("counting")


def test_a_name_is_registered_once(counting):
    from . import counting_task

    assert register_task(counting_task.SPEC) is counting  # the same spec again: nothing changes
    with pytest.raises(ValueError, match="already registered"):
        register_task(counting_task.CountingSpec())
