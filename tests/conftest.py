"""Shared test helpers: compose configs without a command line, and run the CLI as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]

# Without a GPU the Triton kernels of reformer_cli.attention.fast run under Triton's CPU
# interpreter. @triton.jit reads this when a kernel is defined, so it is set here, before any test
# imports the kernels (alone or in the full suite).
if not os.environ.get("TRITON_INTERPRET"):
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

# Under pytest-xdist (`make test`: one worker per core), each worker computes on one thread: two
# workers with a thread per core each would spin-wait for each other's cores (runtime.py,
# SMALL_STEP_VALUES, measured up to ten times slower). The CLI's own processes choose for themselves.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    import torch

    torch.set_num_threads(1)

# Small, fast settings for end-to-end runs on CPU.
TINY = [
    "model=tiny",
    "attention=full",  # the baseline; LSH is the default attention
    "task.seq_len=32",
    "trainer.batch_size=8",
    "trainer.warmup_steps=5",
    "trainer.device=cpu",
    "trainer.progress=plain",
    "task.eval_sequences=32",
    "logger=none",
]


def compose(overrides: list[str] | None = None, config_name: str = "config"):
    """The config `reformer run <overrides>` would get (the project's one `compose`)."""
    from reformer_cli.hydra_entry import compose as compose_config

    return compose_config(config_name, list(overrides or []))


def cli_env() -> dict:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    env.setdefault("WANDB_MODE", "disabled")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m reformer_cli <args>` in `cwd` (the same entry point as the `reformer` script)."""
    return subprocess.run(
        [sys.executable, "-m", "reformer_cli", *args],
        cwd=cwd, env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
    )


def popen_cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reformer_cli", *args],
        cwd=cwd, env=env or cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@contextlib.contextmanager
def another_process_holding(folder: Path) -> Iterator[subprocess.Popen]:
    """A separate process that holds `folder`'s run-folder lock until the block ends (then killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from reformer_cli import run_folder;"
         f" run_folder.acquire({str(folder)!r}); print('held', flush=True); time.sleep(60)"],
        env=cli_env(), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def in_process(args: list[str], capsys) -> tuple[int, str]:
    """`reformer <args>` in this process: (exit code, stderr)."""
    from reformer_cli.cli import main

    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def metrics_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def only_run_dir(root: Path) -> Path:
    runs = [p for p in (root / "outputs" / "synthetic").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def pytest_collection_modifyitems(config, items):
    """Tests marked `wheel` (a wheel installed into a fresh virtualenv, a minute or two) run only when
    selected: `make test-wheel` or `pytest -m wheel`."""
    if "wheel" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="builds and installs a wheel: run with `make test-wheel` (pytest -m wheel)")
    for item in items:
        if "wheel" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)
