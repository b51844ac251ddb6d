"""Sweeps that compare: jobs named by their overrides, grouped and tagged in W&B, best values
declared, a table at the end (console, sweep.json, sweep.md), every job run even when one fails,
and `reformer eval -m` writing one combined record (must-show 4 of the user-experience issue;
item 3 of the reliability issue)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from reformer_cli.sweeps import short_names

from .conftest import TINY, cli_env, run_cli

SMALL = [a for a in TINY if not a.startswith(("attention=", "logger="))] + [
    "task.seq_len=16", "task.vocab_size=16", "task.eval_sequences=16", "attention.chunk_length=4",
    "trainer.max_steps=4", "trainer.log_every=2", "trainer.eval_every=2",
]


def wandb_records(path: Path) -> list[bytes]:
    """The records of a W&B `.wandb` file: a LevelDB-style log (a 7-byte file header, then 32 KiB
    blocks of chunks with a 7-byte header: crc32, length, type full/first/middle/last)."""
    data, records, pending = path.read_bytes(), [], b""
    block, pos = 32768, 7
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 2):
            pending = chunk
        elif kind in (3, 4):
            pending += chunk
        if kind in (1, 4):
            records.append(pending)
    return records


def run_record(run_dir: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    (log,) = run_dir.glob("wandb/offline-run-*/*.wandb")
    found = {"run": None, "metrics": {}}
    for raw in wandb_records(log):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found["run"] = record.run
        elif kind == "metric":
            found["metrics"][record.metric.name] = record.metric
    return found


def test_short_names_keep_only_what_tells_keys_apart():
    assert short_names(["seed", "trainer.lr"]) == {"seed": "seed", "trainer.lr": "lr"}
    assert short_names(["model.dropout", "attention.dropout", "attention.n_rounds"]) == {
        "model.dropout": "model.dropout", "attention.dropout": "attention.dropout", "attention.n_rounds": "n_rounds"}


def test_a_four_job_sweep_ends_with_a_table_and_names_groups_and_tags_its_runs(tmp_path):
    env = cli_env()
    env.update(WANDB_MODE="offline", WANDB_API_KEY="", HOME=str(tmp_path))
    out = run_cli(["run", "-m", *SMALL, "logger=wandb", "seed=0,1", "trainer.lr=1e-3,3e-3", "hydra.sweep.dir=sweep"],
                  tmp_path, env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    names = ["seed=0,lr=0.001", "seed=0,lr=0.003", "seed=1,lr=0.001", "seed=1,lr=0.003"]
    table = out.stdout[out.stdout.index("sweep sweep: 4 job(s), 4 ok, 0 failed"):].splitlines()
    assert table[1].split()[:4] == ["job", "name", "status", "steps"]
    assert [line.split()[1] for line in table[2:6]] == names

    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [j["name"] for j in sweep["jobs"]] == names and not sweep["failed"]
    for job in sweep["jobs"]:
        result = job["result"]
        assert job["status"] == "ok" and result["steps"] == 4
        assert 0 <= result["final"]["valid"]["accuracy"] <= 1 and result["best"]["accuracy"] >= 0
    markdown = (tmp_path / "sweep" / "sweep.md").read_text()
    assert all(f"| {name} | completed | 4 |" in markdown for name in names)

    for num, name in enumerate(names):
        record = run_record(tmp_path / "sweep" / str(num))
        assert record["run"].display_name == name and record["run"].run_group == "sweep"
        tags = set(record["run"].tags)
        assert {"attention=lsh", "model=tiny", "task=synthetic", *name.split(",")} <= tags, tags
        assert {"valid/accuracy", "valid/loss"} <= set(record["metrics"])  # declared with their direction
        assert record["metrics"]["valid/accuracy"].summary.max and record["metrics"]["valid/loss"].summary.min

    # reformer eval -m over the rounds of one of the sweep's models: one combined record and table
    checkpoint = tmp_path / "sweep" / "0"
    out = run_cli(["eval", "-m", f"checkpoint={checkpoint}", "attention.n_rounds=1,2,4", "hydra.sweep.dir=evals"],
                  tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    combined = json.loads((tmp_path / "evals" / "sweep.json").read_text())
    assert [r["evaluated_label"] for r in combined["records"]] == ["lsh-1", "lsh-2", "lsh-4"]
    assert combined["matrix"]["header"][1:] == ["lsh-1", "lsh-2", "lsh-4"] and len(combined["matrix"]["rows"]) == 1
    assert "## Trained x evaluated attention" in (tmp_path / "evals" / "sweep.md").read_text()
    assert "train \\ eval (accuracy %, valid)" in out.stdout


def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    """`-m trainer.lr=1e-3,-1,3e-3`: jobs 0 and 2 complete; the exit code is non-zero and one line
    names job 1."""
    out = run_cli(["run", "-m", *SMALL, "logger=none", "trainer.lr=1e-3,-1,3e-3", "hydra.sweep.dir=sweep"], tmp_path)
    assert out.returncode == 1, out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last == "error: 1 of 3 jobs failed: job 1 (lr=-1): trainer.lr=-1.0 must be a finite number > 0"
    for num in (0, 2):
        assert json.loads((tmp_path / "sweep" / str(num) / "summary.json").read_text())["status"] == "completed"
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [j["status"] for j in sweep["jobs"]] == ["ok", "failed", "ok"]
    assert "* job 1 (lr=-1): trainer.lr=-1.0 must be a finite number > 0" in (tmp_path / "sweep" / "sweep.md").read_text()
