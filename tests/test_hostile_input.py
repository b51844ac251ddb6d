"""Hostile input on the command line and in user files: every case is one line (`error: ...`,
exit 2) and leaves no run folder, or is skipped with one line; nothing hangs or allocates for real.

Runs go in-process (`in_process`) and stop at validation, so each case takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import TINY, in_process
from .test_hostile import one_error_line

BASE = [*TINY, "trainer.max_steps=1"]


def rejected(args: list[str], tmp_path: Path, monkeypatch, capsys) -> str:
    """`reformer run <BASE> <args>` in an empty `tmp_path`: its one error line (exit 2), and no
    folder left behind."""
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", *BASE, *args], capsys)
    assert code == 2, err
    assert list(tmp_path.iterdir()) == []
    return one_error_line(err)


# ------------------------------------------------------------------------------ 1. devices


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:-1", "cuda:", "gpu", "cuda:0:1"])
def test_a_device_that_is_not_one_is_refused_at_validation(device, tmp_path, monkeypatch, capsys):
    assert rejected([f"trainer.device={device}"], tmp_path, monkeypatch, capsys) == (
        f"error: trainer.device='{device}' is not one of: auto, cpu, cuda, cuda:N, mps")


# ------------------------------------------------------------------------------ 2. n_buckets=[]


def test_no_buckets_is_refused_at_validation(tmp_path, monkeypatch, capsys):
    assert rejected(["attention=lsh", "attention.n_buckets=[]"], tmp_path, monkeypatch, capsys) == (
        "error: attention.n_buckets=[]: give an even integer >= 2, a list of them for factorised"
        " buckets, or null for the paper's default")


# ------------------------------------------------------------------------------ 3. ~group


@pytest.mark.parametrize("group", ["model", "attention", "task", "trainer", "layer"])
def test_deleting_a_config_group_is_one_line(group, tmp_path, monkeypatch, capsys):
    args = [a for a in BASE if not a.startswith((f"{group}=", f"{group}."))]
    monkeypatch.chdir(tmp_path)
    code, err = in_process(["run", *args, f"~{group}"], capsys)
    assert code == 2, err
    assert one_error_line(err) == (f"error: the config group '{group}' is required: ~{group} cannot"
                                   f" remove it; choose an option with {group}=<name>")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ 11. self_mask_value


@pytest.mark.parametrize("value", ["-1e40", "1e39", "-inf", "nan"])
def test_a_self_mask_value_beyond_float32_is_refused(value, tmp_path, monkeypatch, capsys):
    shown = repr(float(value))
    assert rejected(["attention=full", "attention.shared_qk=true", f"attention.self_mask_value={value}"],
                    tmp_path, monkeypatch, capsys) == (
        f"error: attention.self_mask_value={shown} must be a finite float32 number (at most 3.40282e+38 in magnitude)")
