"""Data-parallel training: torchrun with 2 CPU processes (gloo) equals one process on the same
global batch; one set of records; the SLURM launcher config composes without a cluster."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import REPO, TINY, cli_env, run_cli

COMMON = [*TINY, "trainer.max_steps=2", "trainer.log_every=1", "trainer.eval_every=2", "trainer.ckpt_every=2",
          "trainer.lr=1e-2", "trainer.warmup_steps=0", "trainer.schedule=constant",
          # a larger Adam epsilon keeps the first updates proportional to the gradients, so the
          # comparison is not decided by the sign of near-zero gradients
          "trainer.eps=1e-3", "task.eval_sequences=16"]


def torchrun(args: list[str], cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
         "-m", "reformer_cli", *args],
        cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=300,
    )


def layers() -> list:
    reversible_ready = importlib.util.find_spec("reformer_cli.model.reversible") is not None
    return ["standard", pytest.param("reversible", marks=pytest.mark.skipif(not reversible_ready, reason="no reversible layers"))]


@pytest.mark.parametrize("layer", layers())
def test_two_processes_equal_one_process_on_the_same_global_batch(tmp_path, layer):
    single = run_cli(["run", *COMMON, f"layer={layer}", "trainer.batch_size=8", "hydra.run.dir=single"], tmp_path)
    assert single.returncode == 0, single.stderr + single.stdout
    ddp = torchrun(["run", *COMMON, f"layer={layer}", "trainer.batch_size=4", "hydra.run.dir=ddp"], tmp_path)
    assert ddp.returncode == 0, ddp.stderr + ddp.stdout

    a = torch.load(tmp_path / "single/checkpoints/step-00000002.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "ddp/checkpoints/step-00000002.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-6), name

    # one set of records, written by rank 0 only
    runs = [p.name for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(runs) == ["ddp", "single"]
    lines = [json.loads(x) for x in (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()]
    # the periodic evaluation covers the whole split (valid), then the final evaluation's line
    assert [(r["step"], r["split"], r.get("final")) for r in lines] == [
        (1, "train", None), (2, "train", None), (2, "valid", None), (2, "valid", True)]
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    single_lines = [json.loads(x) for x in (tmp_path / "single/metrics.jsonl").read_text().splitlines()]
    for x, y in zip(lines, single_lines):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4)


def test_torchrun_without_a_shared_folder_is_refused(tmp_path):
    env = cli_env()
    env.update({"WORLD_SIZE": "2", "RANK": "0", "TORCHELASTIC_RUN_ID": "none"})
    out = run_cli(["run", *TINY], tmp_path, env=env)
    assert out.returncode == 2 and "hydra.run.dir" in out.stderr


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="hydra-submitit-launcher not installed (pip install -e '.[slurm]')")
def test_slurm_launcher_config_composes_without_a_cluster(tmp_path):
    out = run_cli(["run", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4",
                   "--cfg", "hydra", "-p", "hydra.launcher"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "SlurmLauncher" in out.stdout
    assert "partition: gpu" in out.stdout and "gpus_per_node: 4" in out.stdout
    assert "tasks_per_node: ${.gpus_per_node}" in out.stdout
    assert (REPO / "conf/hydra/launcher/slurm.yaml").is_file()
