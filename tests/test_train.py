"""Training end to end: records, checkpoints, W&B offline files, resumption after a kill."""

from __future__ import annotations

import json
import signal
import time

import pytest

from .conftest import TINY, cli_env, metrics_of, only_run_dir, popen_cli, run_cli


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError
        time.sleep(0.05)


def test_run_writes_records_checkpoint_and_offline_wandb(tmp_path):
    env = cli_env()
    env.pop("WANDB_MODE")
    env["WANDB_API_KEY"] = ""  # not logged in: offline
    env["HOME"] = str(tmp_path)  # no ~/.netrc
    args = ["run", *[a for a in TINY if a != "logger=none"], "logger=wandb", "trainer.max_steps=50",
            "trainer.eval_every=25", "trainer.ckpt_every=25", "trainer.final_splits=[valid,test]"]
    out = run_cli(args, tmp_path, env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    run_dir = only_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 50
    assert summary["metric"] == "accuracy" and 0.0 <= summary["final"]["valid"]["accuracy"] <= 1.0
    assert set(summary["final"]) == {"valid", "test"} and 0.0 <= summary["final"]["test"]["accuracy"] <= 1.0
    assert summary["config"]["trainer"]["max_steps"] == 50
    assert summary["code_version"]["package"]
    steps = [r["step"] for r in metrics_of(run_dir) if r["split"] == "train"]
    assert steps == list(range(10, 51, 10))
    assert (run_dir / "checkpoints" / "step-00000050.pt").is_file()
    assert (run_dir / "config.yaml").is_file()
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))


LONG = [*TINY, "trainer.max_steps=500", "trainer.log_every=10", "trainer.ckpt_every=50", "trainer.eval_every=250"]


def test_killed_run_resumes_without_losing_or_duplicating_metrics(tmp_path):
    reference_root, killed_root = tmp_path / "reference", tmp_path / "killed"
    reference_root.mkdir(), killed_root.mkdir()
    assert run_cli(["run", *LONG], reference_root).returncode == 0
    reference = metrics_of(only_run_dir(reference_root))

    proc = popen_cli(["run", *LONG], killed_root)
    try:
        wait_for(lambda: list(killed_root.glob("outputs/synthetic/*/checkpoints/step-00000100.pt")))
    finally:
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait()
    run_dir = only_run_dir(killed_root)
    assert not (run_dir / "summary.json").exists()

    out = run_cli(["run", *LONG, "resume=auto"], killed_root)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "resumed from" in out.stdout + out.stderr
    assert only_run_dir(killed_root) == run_dir  # continued in the same folder
    resumed = metrics_of(run_dir)
    assert [(r["step"], r["split"]) for r in resumed] == [(r["step"], r["split"]) for r in reference]
    for a, b in zip(resumed, reference):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)


def test_sigterm_saves_a_checkpoint_and_a_resume_finishes(tmp_path):
    proc = popen_cli(["run", *LONG], tmp_path)
    try:
        wait_for(lambda: list(tmp_path.glob("outputs/synthetic/*/checkpoints/step-00000050.pt")))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    run_dir = only_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    last_ckpt = sorted((run_dir / "checkpoints").glob("step-*.pt"))[-1]
    assert int(last_ckpt.stem.split("-")[1]) == summary["steps"]

    out = run_cli(["run", *LONG, "resume=auto"], tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 500
    steps = [r["step"] for r in metrics_of(run_dir) if r["split"] == "train"]
    assert steps == list(range(10, 501, 10))


def test_fresh_run_refuses_a_folder_with_checkpoints(tmp_path):
    args = ["run", *TINY, "trainer.max_steps=2", "hydra.run.dir=fixed"]
    assert run_cli(args, tmp_path).returncode == 0
    out = run_cli(args, tmp_path)
    assert out.returncode == 2 and "resume=auto" in out.stderr
