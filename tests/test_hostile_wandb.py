"""W&B (the default logger) when it cannot work: a bad `WANDB_MODE`, a project name W&B refuses and
a file where `<run>/wandb` goes are one line before training; an online start with no API key or
no network logs offline after one warning line, within `logger.init_timeout`, and the run completes.

No network is used: a key W&B cannot check goes to an unroutable local port (WANDB_BASE_URL).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .conftest import TINY, in_process, run_cli
from .test_hostile import one_error_line

pytest.importorskip("wandb")

BASE = [a for a in TINY if not a.startswith("logger=")] + ["logger=wandb", "trainer.max_steps=1", "trainer.progress=none"]


def test_an_unknown_wandb_mode_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "garbage")
    code, err = in_process(["run", *BASE], capsys)
    assert code == 2
    assert one_error_line(err) == ("error: WANDB_MODE='garbage' is not one of: online, offline, disabled, shared,"
                                   " run, dryrun; unset it, or choose with logger.mode=online|offline|disabled"
                                   " (or logger=none)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("project", ["a/b", "x" * 129])
def test_a_project_name_wandb_refuses_is_one_line_before_training(project, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    code, err = in_process(["run", *BASE, f"logger.project={project}"], capsys)
    assert code == 2
    assert one_error_line(err).startswith(f"error: logger.project='{project[:60]}")
    assert "is not a W&B project name" in err
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_the_wandb_folder_goes_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tmp_path / "run"
    run.mkdir()
    (run / "wandb").write_text("notes")
    code, err = in_process(["run", *BASE, f"hydra.run.dir={run}"], capsys)
    assert code == 2
    assert one_error_line(err) == f"error: {run}/wandb is not a folder: the wandb logger cannot write there; remove it"
    assert sorted(p.name for p in run.iterdir()) == ["wandb"] and (run / "wandb").read_text() == "notes"


def offline_env(tmp_path: Path, **extra: str) -> dict:
    """An environment with no W&B credentials (no key, an empty home, no .netrc) and no WANDB_MODE."""
    from .conftest import cli_env

    env = cli_env()
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_IDENTITY_TOKEN_FILE"):
        env.pop(name, None)
    env.update(HOME=str(tmp_path / "home"), NETRC=str(tmp_path / "no-netrc"), OMP_NUM_THREADS="1", **extra)
    os.makedirs(env["HOME"], exist_ok=True)
    return env


def completed_offline(result, run: Path) -> str:
    """The run's output, once it is checked that the run completed and logged offline."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert (run / "summary.json").is_file()
    assert list((run / "wandb").glob("offline-run-*")), output
    return output


def test_online_without_an_api_key_logs_offline_after_one_warning(tmp_path):
    run = tmp_path / "run"
    result = run_cli(["run", *BASE, "logger.mode=online", f"hydra.run.dir={run}"], tmp_path,
                     env=offline_env(tmp_path), timeout=120)
    output = completed_offline(result, run)
    warnings = [line for line in output.splitlines() if line.startswith("W&B could not start online")]
    assert len(warnings) == 1 and "No API key configured" in warnings[0], output


def test_a_key_without_network_gives_up_within_the_timeout_and_logs_offline(tmp_path):
    run = tmp_path / "run"
    env = offline_env(tmp_path, WANDB_API_KEY="x" * 40, WANDB_BASE_URL="http://127.0.0.1:9")
    start = time.monotonic()
    result = run_cli(["run", *BASE, "logger.init_timeout=2", f"hydra.run.dir={run}"], tmp_path, env=env, timeout=120)
    elapsed = time.monotonic() - start
    output = completed_offline(result, run)
    warnings = [line for line in output.splitlines() if line.startswith("W&B could not start online")]
    assert len(warnings) == 1 and "within logger.init_timeout=2 s" in warnings[0], output
    assert elapsed < 90  # W&B's own wait alone is 90 s (the whole run takes 20-50 s on a loaded 2-core machine)
