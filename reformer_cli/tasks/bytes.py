"""Byte-level language modelling: enwik8 (the paper's enwik8-64K) and any local text file.

Tokens. A byte is its own id, 0..255; id 256 (START) is the start token the model reads before
the first byte of a window (`shift_right`) and the pad of the last, partial evaluation window
(weight 0). So vocab_size = 257: the 256 bytes plus one id that is not a byte (docs/data.md, "enwik8";
trax uses 258 = 256 + pad + an unused EOS, with bytes shifted by 2). Byte 0 stays
distinct from the start token, so any file, binary included, is modelled exactly.

Training reads windows of `task.seq_len` bytes at offsets drawn uniformly from the train split by a
generator seeded by (seed, step); rank r takes its rows of that global batch: a pure function of the step, resumable with no sampler
state. Evaluation covers the split in consecutive non-overlapping windows, every byte predicted
exactly once, no context carried between windows (T2T's protocol); the last window is padded with
zero weight. bpc = summed nats / ln 2 / number of bytes.

Files are the prepared split files of reformer_cli/data/bytes.py, read through np.memmap
(recreated on each batch: cheap, and no growing page-cache mapping; as nanoGPT).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..data.bytes import ENWIK8_MD5, load_enwik8, load_text
from ..errors import DataError
from ..primitives.context import derive_seed
from .base import Batch, Task

START = 256  # the start token of every window; also the pad of the last evaluation window
PAD = START
VOCAB_SIZE = 257


def lm_batch(targets: np.ndarray, weights: np.ndarray, start: int) -> Batch:
    """A Batch from int64 targets: inputs are `shift_right(targets, start)`. Built in NumPy and
    wrapped without a copy: torch's intra-op threads cost more than the copies on a small CPU."""
    inputs = np.empty_like(targets)
    inputs[:, 0] = start
    inputs[:, 1:] = targets[:, :-1]
    return Batch(torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(weights))


class ByteTask(Task):
    """A byte-level LM over prepared split files (train / valid / test)."""

    metric = "bpc"
    vocab_size = VOCAB_SIZE

    def __init__(self, cfg: Any, seed: int):
        self.cfg = cfg
        self.seq_len = int(cfg.seq_len)
        self.seed = seed
        self._folder: Path | None = None
        self._manifest: dict | None = None

    # --- files

    def load(self) -> tuple[Path, dict]:
        """(folder, manifest), checked; DataError with what is missing and how to get it."""
        raise NotImplementedError

    def check_data(self) -> None:
        self._folder, self._manifest = self.load()
        train = self._manifest["splits"]["train"]["bytes"]
        if train < self.seq_len:
            raise DataError(
                f"the train split of {self._folder} has {train:,} bytes, fewer than task.seq_len={self.seq_len}"
            )

    @property
    def manifest(self) -> dict:
        if self._manifest is None:
            self.check_data()
        return self._manifest

    def split(self, name: str) -> np.memmap:
        """The bytes of split `name` (train / valid / test), memory-mapped read-only."""
        entry = self.manifest["splits"].get(name)
        if entry is None:
            raise DataError(f"{self.name} has no split '{name}' (splits: {', '.join(self.manifest['splits'])})")
        return np.memmap(self._folder / entry["file"], dtype=np.uint8, mode="r")

    # --- batches

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Batch:
        data = self.split("train")
        # this rank's rows of the step's global batch (tasks/base.py)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, self.name, "train", step))
        offsets = torch.randint(0, len(data) - self.seq_len + 1, (batch_size * world_size,), generator=gen)
        offsets = offsets[rank * batch_size : (rank + 1) * batch_size].tolist()
        targets = np.empty((batch_size, self.seq_len), dtype=np.int64)
        for row, offset in zip(targets, offsets):
            row[:] = data[offset : offset + self.seq_len]
        return lm_batch(targets, np.ones(targets.shape, dtype=np.float32), START)

    def eval_windows(self, split: str) -> int:
        return math.ceil(int(self.manifest["splits"][split]["bytes"]) / self.seq_len)

    def eval_batch_count(self, split: str, batch_size: int) -> int:
        return math.ceil(self.eval_windows(split) / batch_size)

    def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[Batch]:
        data = self.split(split)
        n, length = len(data), self.seq_len
        n_windows = math.ceil(n / length)
        for i, first in enumerate(range(0, n_windows, batch_size)):
            if max_batches and i >= max_batches:
                return
            count = min(batch_size, n_windows - first)
            start, stop = first * length, min(n, (first + count) * length)
            targets = np.full(count * length, PAD, dtype=np.int64)
            targets[: stop - start] = data[start:stop]
            weights = np.zeros(count * length, dtype=np.float32)
            weights[: stop - start] = 1.0
            yield lm_batch(targets.reshape(count, length), weights.reshape(count, length), START)

    # --- metrics and records

    def metrics(self, loss_sum: float, weight_sum: float, correct_sum: float) -> dict[str, float]:
        loss = loss_sum / max(weight_sum, 1e-12)
        return {"loss": loss, "bpc": loss / math.log(2), "accuracy": correct_sum / max(weight_sum, 1e-12)}

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {
            **super().describe(),
            "data_dir": str(self._folder),
            "data_sha256": m["data_sha256"],
            "split_bytes": {name: entry["bytes"] for name, entry in m["splits"].items()},
            "source": {k: m["source"].get(k) for k in ("origin", "md5", "sha256", "verified", "checks_skipped")},
            "tokens": "bytes 0..255, start/pad 256",
        }


class Enwik8Task(ByteTask):
    """enwik8 split by bytes 90M / 5M / 5M (prepared by `reformer data prepare task=enwik8`)."""

    name = "enwik8"

    def load(self) -> tuple[Path, dict]:
        return load_enwik8(self.cfg)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["official"] = self.manifest["source"].get("md5") == ENWIK8_MD5
        return info


class TextTask(ByteTask):
    """Any local file as bytes, split by `task.split_fractions`."""

    name = "text"

    def load(self) -> tuple[Path, dict]:
        return load_text(self.cfg)
