"""Run records: atomic writes, checkpoint retention, metrics truncation."""

from __future__ import annotations

import json

import pytest
import torch

from reformer_cli.checkpointer import save_checkpoint
from reformer_cli.errors import UserError
from reformer_cli.records import MetricsLog, find_checkpoint, list_checkpoints, load_checkpoint, write_json_atomic


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


def test_metrics_and_summaries_are_strict_json(tmp_path):
    """NaN and infinities are written as null (a metrics line names them under `nonfinite`)."""
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"step": 1, "loss": float("nan"), "grad_norm": float("inf"), "accuracy": 0.5})
    write_json_atomic(tmp_path / "summary.json", {"best": {"loss": float("-inf")}, "final": [float("nan")]})

    def refuse(constant):
        raise ValueError(constant)

    (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(line, parse_constant=refuse) == {"step": 1, "loss": None, "grad_norm": None, "accuracy": 0.5,
                                                        "nonfinite": ["loss", "grad_norm"]}
    summary = json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)
    assert summary == {"best": {"loss": None}, "final": [None]}


def test_a_full_disk_is_one_user_error_and_the_previous_checkpoint_stays(tmp_path, monkeypatch):
    import errno

    import reformer_cli.records as records

    save_checkpoint(tmp_path, 1, {"w": torch.ones(4)}, keep_last=3)

    def full(state, f):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UserError, match=r"^disk full: cannot write .*step-00000002\.pt"):
        save_checkpoint(tmp_path, 2, {"w": torch.ones(4)}, keep_last=3)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))
    monkeypatch.setattr(records.shutil, "disk_usage", lambda path: type("U", (), {"free": 0})())

    def torch_says_so(state, f):  # torch's writer reports a short write as a RuntimeError
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 478912 vs 478800")

    monkeypatch.setattr(torch, "save", torch_says_so)
    with pytest.raises(UserError, match="^disk full"):
        save_checkpoint(tmp_path, 2, {"w": torch.ones(4)}, keep_last=3)


def test_check_writable(tmp_path):
    from reformer_cli.records import check_writable

    check_writable(tmp_path / "new" / "eval.json")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write .*file/eval.json"):
        check_writable(tmp_path / "file" / "eval.json")
    with pytest.raises(UserError, match="it is a folder"):
        check_writable(tmp_path / "new")
