"""The command line as a user meets it: help, config errors, composition (sweeps: test_sweeps.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO, TINY, run_cli


def test_help_lists_commands(tmp_path):
    out = run_cli(["--help"], tmp_path)
    assert out.returncode == 0
    assert "run" in out.stdout and "reformer <command>" in out.stdout


def test_console_script_and_module_are_the_same_entry_point():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["reformer"] == "reformer_cli.cli:main"
    main_py = (REPO / "reformer_cli" / "__main__.py").read_text()
    assert "from .cli import main" in main_py


def test_run_help_lists_groups(tmp_path):
    out = run_cli(["run", "--help"], tmp_path)
    assert out.returncode == 0
    for group in ("model", "attention", "layer", "task", "trainer", "logger"):
        assert group in out.stdout


def test_eval_help_lists_attention_options(tmp_path):
    out = run_cli(["eval", "--help"], tmp_path)
    assert out.returncode == 0
    assert "checkpoint=PATH" in out.stdout and "attention:  full, local, lsh" in out.stdout


def test_unknown_command(tmp_path):
    out = run_cli(["trian"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: unknown command 'trian' (commands: " + out.stderr.split("(commands: ")[1].strip()


@pytest.mark.parametrize(
    "override, expected",
    [
        ("task=synthtic", "unknown task 'synthtic'"),
        ("trainer.max_steps=abc", "trainer.max_steps"),
        ("trainer.nonsense=1", "unknown config key 'trainer.nonsense'"),
        ("trainer.optimizer=sgd", "trainer.optimizer='sgd' is not one of"),
        ("model.n_heads=3", "not divisible by model.n_heads=3"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, override, expected):
    out = run_cli(["run", *TINY, override], tmp_path)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in out.stdout + out.stderr
    assert not (tmp_path / "outputs").exists()  # a rejected config leaves no run folder


def test_config_errors_come_before_torch_is_imported(tmp_path):
    """A bad override fails during composition: torch is never imported."""
    code = (
        "import sys\n"
        "from reformer_cli.cli import main\n"
        "try:\n"
        "    main(['run', 'trainer.max_steps=abc'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 2\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_cfg_job_prints_the_composed_config(tmp_path):
    out = run_cli(["run", "attention=full", "attention.shared_qk=true", "trainer.max_steps=7", "--cfg", "job"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "shared_qk: true" in out.stdout and "max_steps: 7" in out.stdout
