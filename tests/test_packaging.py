"""Installable anywhere: the configs and experiment definitions ship inside the package.

The quick checks run always: pyproject.toml lists every subpackage and its package data covers
every file of conf/ and experiments/. Must-show 2 (marked `wheel`, 3 min 17 s on a busy 2-core VM: it
installs torch and the Hydra stack into a fresh virtualenv) builds a wheel, installs it, and in an
empty folder runs a short `reformer run` and `reformer reproduce --profile smoke --list`. It runs
with `make test-wheel` (CI runs it after the suite) or `pytest -m wheel`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from .conftest import REPO

SHIPPED = {"reformer_cli.conf": "conf", "reformer_cli.experiments": "experiments"}


def setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_subpackage_is_listed():
    packages = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "reformer_cli").rglob("__init__.py")}
    assert set(setuptools_config()["packages"]) == packages | set(SHIPPED)
    assert setuptools_config()["package-dir"] == SHIPPED


def test_package_data_covers_every_config_and_definition():
    tracked = subprocess.run(["git", "ls-files", "conf", "experiments"], cwd=REPO, capture_output=True, text=True)
    files = tracked.stdout.split() if tracked.returncode == 0 and tracked.stdout else \
        [str(p.relative_to(REPO)) for folder in SHIPPED.values() for p in (REPO / folder).rglob("*") if p.is_file()]
    assert files
    data = setuptools_config()["package-data"]
    for package, folder in SHIPPED.items():
        for name in (f for f in files if f.startswith(folder + "/")):
            inside = name[len(folder) + 1:]
            assert any(fnmatch.fnmatch(inside, g) and inside.count("/") == g.count("/") for g in data[package]), name


def test_the_package_finds_its_folders_in_a_clone():
    from reformer_cli import shipped
    from reformer_cli.hydra_entry import CONF_DIR
    from reformer_cli.definitions.experiments import EXPERIMENTS_DIR

    assert CONF_DIR == shipped("conf") == REPO / "conf"
    assert EXPERIMENTS_DIR == REPO / "experiments"


def clean_env(home: Path) -> dict:
    """No PYTHONPATH (the clone must not leak in), W&B off, HOME a scratch folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HYDRA_FULL_ERROR")}
    env.update(WANDB_MODE="disabled", HOME=str(home), PYTHONNOUSERSITE="1")
    return env


def run(args: list, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.mark.wheel
def test_a_built_wheel_runs_from_an_empty_folder(tmp_path):
    """Must-show 2."""
    env = clean_env(tmp_path / "home")
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the clone
    for name in ("reformer_cli", "conf", "experiments", "pyproject.toml", "README.md"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
         source], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("reformer_cli-*.whl")

    venv.create(tmp_path / "venv", with_pip=True)  # fresh: no site-packages of this interpreter
    python = tmp_path / "venv" / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", wheel], tmp_path, env, timeout=900)

    empty = tmp_path / "empty"
    empty.mkdir()
    where = run([python, "-c", "import reformer_cli; print(reformer_cli.__file__)"], empty, env).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), where
    reformer = tmp_path / "venv" / "bin" / "reformer"
    out = run([reformer, "run", "task=synthetic", "task.seq_len=16", "task.vocab_size=16", "task.eval_sequences=16",
               "model=tiny", "attention.chunk_length=4", "trainer.max_steps=2", "trainer.device=cpu", "logger=none"],
              empty, env)
    (summary,) = (empty / "outputs" / "synthetic").glob("*/summary.json")  # outputs under the current folder
    assert json.loads(summary.read_text())["status"] == "completed", out.stdout
    listed = run([reformer, "reproduce", "--profile", "smoke", "--list"], empty, env).stdout
    for experiment in ("table2", "fig3", "fig4", "fig5_depth", "fig5_speed", "memory_claims"):
        assert f"{experiment}: " in listed
    definitions = Path(listed.splitlines()[0].split(": ", 1)[1])  # "definitions (...): <the installed folder>"
    assert definitions.is_relative_to(tmp_path / "venv") and (definitions / "data" / "smoke_corpus.txt").is_file()
    assert sorted(p.name for p in empty.iterdir()) == ["outputs"]  # nothing else written here
