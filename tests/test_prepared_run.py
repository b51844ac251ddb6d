"""A run prepared once before Hydra starts (reformer_cli/prepared_run.py): composed once, checked,
its folder claimed and locked, `resume=` decided, each sweep job its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from reformer_cli import hydra_entry, run_folder
from reformer_cli.config import validate
from reformer_cli.errors import ConfigError, UserError
from reformer_cli.prepared_run import PreparedRun

from .conftest import TINY, in_process, only_run_dir


@pytest.fixture
def compositions(monkeypatch) -> list[list[str]]:
    """The overrides of every `hydra_entry.compose` call (Hydra's own composing is not counted)."""
    calls: list[list[str]] = []
    compose = hydra_entry.compose

    def counted(config_name, overrides, *args, **kwargs):
        calls.append(list(overrides))
        return compose(config_name, overrides, *args, **kwargs)

    monkeypatch.setattr(hydra_entry, "compose", counted)
    return calls


def test_resume_auto_composes_once_and_trains_the_config_it_composed(tmp_path, monkeypatch, capsys, compositions):
    from reformer_cli.commands import run as run_command

    monkeypatch.chdir(tmp_path)
    trained = []
    run_job = run_command.run_job

    def recorded(run):
        trained.append(run)
        return run_job(run)

    monkeypatch.setattr(run_command, "run_job", recorded)
    args = ["run", *TINY, "trainer.max_steps=2", "trainer.progress=none", "resume=auto"]
    assert in_process(args, capsys)[0] == 0  # a fresh run: no folder to continue
    assert in_process(args, capsys)[0] == 0  # continued: the same folder
    assert len(compositions) == 2  # once per command
    folder = only_run_dir(tmp_path)
    assert folder.name.endswith("_synthetic-full-standard-seed0")
    assert [run.folder for run in trained] == [folder, folder]
    assert all(run.validated for run in trained)
    assert trained[0].resume.folder is None and (tmp_path / trained[1].resume.folder).resolve() == folder.resolve()
    assert trained[1].explicit_keys >= {"model", "attention", "trainer.max_steps", "resume"}


def test_a_run_is_composed_checked_and_named_before_its_folder_is_claimed(tmp_path, monkeypatch, compositions):
    monkeypatch.chdir(tmp_path)
    run = PreparedRun.prepare([*TINY, "seed=3", "run_name=a b"], "config", check=validate)
    assert len(compositions) == 1 and run.validated and run.config.seed == 3
    assert run.folder.parent == Path("outputs/synthetic") and run.folder.name.endswith("_a-b")
    assert not (tmp_path / "outputs").exists()  # nothing created yet
    taken = run.folder
    taken.mkdir(parents=True)
    with pytest.raises(RuntimeError, match="the job failed"):
        with run.held() as arguments:
            assert run.folder == taken.with_name(f"{taken.name}-2")  # a fresh name beside a taken one
            assert arguments[-1] == f"hydra.run.dir={run.folder}"
            assert run_folder.is_held_here(run.folder)
            raise RuntimeError("the job failed")
    assert not run.folder.exists() and not run_folder.is_held_here(run.folder)  # no record: removed
    assert taken.is_dir()


def test_a_rejected_config_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="trainer.max_steps"):
        PreparedRun.prepare([*TINY, "trainer.max_steps=0"], "config", check=validate)
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_is_prepared_for_its_folder_and_each_job_is_its_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = PreparedRun.prepare(["-m", *TINY, "seed=0,1"], "config", check=validate)
    assert sweep.multirun and sweep.config is None and not sweep.validated
    assert sweep.folder.parent == Path("multirun/synthetic") and sweep.fresh_name
    assert sweep.explicit_keys >= {"seed", "attention"}


def test_commands_that_run_nothing_and_explicit_folders_are_not_composed(tmp_path, monkeypatch, compositions):
    monkeypatch.chdir(tmp_path)
    shown = PreparedRun.prepare(["--cfg", "job", "seed=1"], "config", check=validate)
    assert shown.folder is None and shown.arguments == ["--cfg", "job", "seed=1"]
    (tmp_path / "old").mkdir()
    resumed = PreparedRun.prepare([*TINY, "resume=old"], "config", check=validate)
    assert resumed.folder == Path("old")
    assert resumed.arguments[-1] == "hydra.run.dir=old" and resumed.config is None
    assert compositions == []  # Hydra composes these; the job checks them


def test_under_torchrun_the_other_ranks_share_rank_0s_folder_without_its_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    run = PreparedRun.prepare(list(TINY), "config", check=validate)
    assert run.arguments[len(TINY):] == ["hydra.run.dir=outputs/torchrun-abc", "hydra.output_subdir=null",
                                         "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    with run.held():
        assert run.folder.is_dir() and not run_folder.is_held_here(run.folder)
    with pytest.raises(UserError, match="sweeps \\(-m\\) cannot run under torchrun"):
        PreparedRun.prepare(["-m", "seed=0,1"], "config", check=validate)
