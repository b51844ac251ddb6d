"""`reformer run -m hparams_search=synthetic_lr`: the Optuna sweeper optimises the final valid metric
each trial returns (objective.py); every trial is in the sweep table. Skipped without the plugin
(the `dev` extra installs it)."""

from __future__ import annotations

import json
import math

import pytest

from .conftest import TINY, in_process

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

BASE = [a for a in TINY if a != "trainer.progress=plain"] + ["trainer.max_steps=3", "trainer.progress=none"]


def test_an_optuna_search_runs_its_trials_and_optimises_the_returned_metric(tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", "-m", "hparams_search=synthetic_lr", *BASE, "hydra.sweeper.n_trials=4",
                            "hydra.sweeper.sampler.n_startup_trials=2", "hydra.sweep.dir=search"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "search" / "sweep.json").read_text())
    assert [j["status"] for j in report["jobs"]] == ["ok"] * 4 and len(report["table"]["rows"]) == 4
    lrs = [next(o for o in j["overrides"] if o.startswith("trainer.lr=")) for j in report["jobs"]]
    assert len(set(lrs)) == 4  # four trials of the search, each named by what it tried
    assert all(j["name"].startswith("lr=") for j in report["jobs"])
    finals = [j["result"]["final"]["valid"]["accuracy"] for j in report["jobs"]]
    best = yaml.safe_load((tmp_path / "search" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(finals))  # maximised, as the preset declares


def test_the_objective_is_the_final_metric_or_nan():
    from reformer_cli.errors import ConfigError
    from reformer_cli.objective import check_objective, objective

    summary = {"final": {"valid": {"accuracy": 0.5, "loss": 1.5}}}
    assert objective("accuracy", summary) == 0.5 and objective("loss", summary) == 1.5
    assert math.isnan(objective("accuracy", {"status": "diverged", "final": {}})) and math.isnan(objective("loss", None))
    assert objective(None, summary) is summary  # nothing optimised: the summary, as before
    check_objective("accuracy", "maximize")
    check_objective("loss", "Direction.minimize")
    with pytest.raises(ConfigError, match="direction=maximize"):
        check_objective("accuracy", "minimize")
    with pytest.raises(ConfigError, match="not one of"):
        check_objective("acc", None)
