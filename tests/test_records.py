"""Run records: atomic writes, checkpoint retention, metrics truncation."""

from __future__ import annotations

import json

import pytest
import torch

from reformer_cli.errors import UserError
from reformer_cli.records import (
    MetricsLog,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    write_json_atomic,
)


def test_checkpoints_keep_the_last_k(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, {"step": step, "w": torch.ones(2) * step}, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [30, 40]
    assert load_checkpoint(find_checkpoint(tmp_path))["step"] == 40
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_truncated_checkpoint_is_reported(tmp_path):
    path = save_checkpoint(tmp_path, 5, {"w": torch.randn(1000)}, keep_last=1)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(path)


def test_metrics_truncate_after(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (10, 20, 30):
        log.append({"step": step, "loss": 1.0 / step})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 40, "lo')  # a line cut by a crash
    log.truncate_after(20)
    assert [r["step"] for r in log.read()] == [10, 20]


def test_atomic_json(tmp_path):
    write_json_atomic(tmp_path / "s.json", {"a": 1})
    write_json_atomic(tmp_path / "s.json", {"a": 2})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
