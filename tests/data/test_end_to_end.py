"""prepare -> train a few steps -> evaluate, from small files in the real formats, as a user runs it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from reformer_cli.evaluation import evaluate
from reformer_cli.model.reformer import build_model
from reformer_cli.records import find_checkpoint, load_checkpoint
from reformer_cli.tasks import build_task

from ..conftest import cli_env, compose, run_cli
from .formats import chrabaszcz_dataset, enwik8_zip, images, oord_dataset, text_bytes

STEPS = ["model=tiny", "attention=full", "trainer.max_steps=4", "trainer.batch_size=4", "trainer.warmup_steps=2", "trainer.device=cpu",
         "trainer.progress=plain", "trainer.log_every=2", "trainer.eval_every=4", "trainer.eval_batches=1",
         "trainer.eval_batch_size=64", "logger=none"]


def only_run(root: Path, task: str) -> Path:
    runs = [p for p in (root / "outputs" / task).iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def evaluate_checkpoint(run_dir: Path, split: str) -> dict:
    """What `reformer eval` will do: rebuild the run's model and task from the checkpoint."""
    from omegaconf import OmegaConf

    saved = load_checkpoint(find_checkpoint(str(run_dir)))
    cfg = OmegaConf.create(saved["config"])
    task = build_task(cfg.task, cfg.seed)
    task.check_data()
    model = build_model(cfg, task.vocab_size, task.seq_len)
    model.load_state_dict(saved["model"])
    return evaluate(model, task, split=split, batch_size=16, max_batches=0, device=torch.device("cpu"),
                    precision="fp32", seed=0)


def test_enwik8_zip_prepare_train_evaluate(tmp_path):
    zip_path = enwik8_zip(tmp_path / "enwik8.zip", text_bytes(60_000, seed=7))
    data = [f"task.data_dir={tmp_path / 'data'}", "task.split_sizes=[50000,5000,5000]"]
    prepared = run_cli(["data", "prepare", "task=enwik8", *data, "--source", str(zip_path), "--no-verify"], tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    assert "enwik8 prepared in" in prepared.stdout and "SKIPPED" in prepared.stdout

    out = run_cli(["run", "task=enwik8", "task.seq_len=64", *data, *STEPS], tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    run_dir = only_run(tmp_path, "enwik8")
    summary = json.loads((run_dir / "summary.json").read_text())
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert summary["metric"] == "bpc" and summary["steps"] == 4
    assert 0 < summary["final"]["valid"]["bpc"] < 9
    assert summary["task"]["data_sha256"] == manifest["data_sha256"] and summary["task"]["official"] is False
    test = evaluate_checkpoint(run_dir, "test")
    assert math.isfinite(test["bpc"]) and 0 < test["bpc"] < 9


def test_run_without_data_prints_one_line_of_guidance(tmp_path):
    env = cli_env()
    env["REFORMER_DATA_DIR"] = str(tmp_path / "cache")
    out = run_cli(["run", "task=enwik8", "model=tiny", "logger=none", "trainer.device=cpu"], tmp_path, env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: enwik8 is not prepared in {tmp_path / 'cache' / 'enwik8'} (no manifest.json): run"
        " `reformer data prepare task=enwik8` to download http://mattmahoney.net/dc/enwik8.zip (36 MB) and split"
        " it, or point task.data_dir at a prepared folder"
    )
    assert "Traceback" not in out.stdout + out.stderr
    assert not list(tmp_path.rglob("*.pt"))


def test_imagenet64_oord_tar_prepare_train_evaluate(tmp_path):
    oord_dataset(tmp_path / "raw", images(6, seed=8), images(2, seed=9))
    data = ["task=imagenet64", "task.variant=oord", f"task.data_dir={tmp_path / 'raw'}"]
    prepared = run_cli(["data", "prepare", *data, "--no-verify"], tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    out = run_cli(["run", *data, "task.seq_len=64", *STEPS], tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    summary = json.loads((only_run(tmp_path, "imagenet64") / "summary.json").read_text())
    assert summary["metric"] == "bits_per_dim" and summary["task"]["variant"] == "oord"
    assert 0 < summary["final"]["valid"]["bits_per_dim"] < 9  # the whole valid split: 2 x 192 windows
    assert summary["task"]["source"]["checks_skipped"] == ["image counts"]


def test_imagenet64_chrabaszcz_and_text_train_in_process(tmp_path):
    from reformer_cli.data.bytes import prepare_text
    from reformer_cli.data.imagenet64 import prepare_imagenet64
    from reformer_cli.train import train

    chrabaszcz_dataset(tmp_path / "raw", images(10, seed=10), images(2, seed=11), fmt="pickle")
    cfg = compose(["task=imagenet64", "task.variant=chrabaszcz", f"task.data_dir={tmp_path / 'raw'}",
                   "task.seq_len=64", *STEPS])
    prepare_imagenet64(cfg.task, verify=False)
    summary = train(cfg, tmp_path / "run-imagenet")
    assert summary["task"]["variant"] == "chrabaszcz" and math.isfinite(summary["final"]["valid"]["bits_per_dim"])

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(text_bytes(30_000, seed=12))
    cfg = compose(["task=text", f"task.path={corpus}", f"task.data_dir={tmp_path / 'text'}", "task.seq_len=64",
                   *STEPS])
    prepare_text(cfg.task)
    summary = train(cfg, tmp_path / "run-text")
    assert summary["metric"] == "bpc" and math.isfinite(summary["final"]["valid"]["bpc"])
    assert summary["task"]["split_bytes"] == {"train": 27_000, "valid": 1_500, "test": 1_500}
