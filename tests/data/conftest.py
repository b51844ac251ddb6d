"""Helpers shared by the data tests."""

from __future__ import annotations

from pathlib import Path

from ..conftest import compose

SIZES = [20_000, 3_000, 2_000]  # bytes of a small enwik8-like corpus: train, valid, test


def enwik8_task(folder: Path, sizes=SIZES):
    """The task config of `task=enwik8` prepared into `folder` with these split sizes."""
    return compose(["task=enwik8", "task.seq_len=64", f"task.data_dir={folder}",
                    f"task.split_sizes=[{','.join(map(str, sizes))}]"]).task
