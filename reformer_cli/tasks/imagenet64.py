"""ImageNet 64x64 density estimation (the paper's imagenet64): bits per dim.

Each image is 12,288 tokens, the pixel values 0..255 in (row, column, channel) order, read from the
prepared memmap `[N, 12288]` of reformer_cli/data/imagenet64.py. vocab_size = 256. The model reads
`shift_right(image, 0)`: the start token is 0, as trax's ShiftRight (zero padding) in the paper's
`t2t_image_imagenet64_gen_flat_rev` setup; it sits only at position 0, so it is never confused
with a black pixel.

`task.variant` (oord, the paper's, or chrabaszcz) is recorded in every summary with the data
checksum: the numbers are not comparable across variants.

The paper has no test split: `valid` is the held-out set, and a request for `test` evaluates
`valid` (logged once, and recorded in describe()).

`task.seq_len` = 12,288 (default) models whole images, as the paper. A divisor of 12,288 cuts each
image into independent windows (e.g. 64 tokens for CPU tests): cheaper, but a different task, so
its numbers are not the paper's. Training draws (image, window) uniformly from a generator seeded
by (seed, step), rank r taking its rows of that global batch; evaluation covers every window of every image exactly once, in order.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..data.imagenet64 import TOKENS, load_imagenet64
from ..errors import DataError
from ..primitives.context import derive_seed
from .base import Batch, Task
from .bytes import lm_batch

log = logging.getLogger("reformer")

START = 0  # trax ShiftRight pads with zeros
VOCAB_SIZE = 256


class ImageNet64Task(Task):
    name = "imagenet64"
    metric = "bits_per_dim"
    vocab_size = VOCAB_SIZE

    def __init__(self, cfg: Any, seed: int):
        self.cfg = cfg
        self.variant = str(cfg.variant)
        self.seq_len = int(cfg.seq_len)  # a divisor of TOKENS (the spec's check)
        self.windows_per_image = TOKENS // self.seq_len
        self.seed = seed
        self._folder: Path | None = None
        self._manifest: dict | None = None
        self._noted_test = False

    # --- files

    def check_data(self) -> None:
        self._folder, self._manifest = load_imagenet64(self.cfg)

    @property
    def manifest(self) -> dict:
        if self._manifest is None:
            self.check_data()
        return self._manifest

    def resolve_split(self, split: str) -> str:
        if split == "test":
            if not self._noted_test:
                log.info("imagenet64 has no test split (the paper's held-out set is valid): evaluating valid")
                self._noted_test = True
            return "valid"
        if split not in self.manifest["splits"]:
            raise DataError(f"imagenet64 has no split '{split}' (splits: train, valid)")
        return split

    def images(self, split: str) -> np.memmap:
        """[N, 12288] uint8 of split `split`, memory-mapped read-only."""
        entry = self.manifest["splits"][self.resolve_split(split)]
        return np.memmap(self._folder / entry["file"], dtype=np.uint8, mode="r", shape=tuple(entry["shape"]))

    # --- batches

    def batch_of(self, data: np.memmap, indices: list[int]) -> Batch:
        """Windows `k` (image k // W, part k % W) of `data`, in the order of `indices`."""
        w, length = self.windows_per_image, self.seq_len
        targets = np.empty((len(indices), length), dtype=np.int64)
        for row, k in zip(targets, indices):
            row[:] = data[k // w, (k % w) * length : (k % w + 1) * length]
        return lm_batch(targets, np.ones(targets.shape, dtype=np.float32), START)

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Batch:
        data = self.images("train")
        # this rank's rows of the step's global batch (tasks/base.py)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, self.name, "train", step))
        indices = torch.randint(0, data.shape[0] * self.windows_per_image, (batch_size * world_size,), generator=gen)
        return self.batch_of(data, indices[rank * batch_size : (rank + 1) * batch_size].tolist())

    def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[Batch]:
        data = self.images(split)
        total = data.shape[0] * self.windows_per_image
        for i, first in enumerate(range(0, total, batch_size)):
            if max_batches and i >= max_batches:
                return
            yield self.batch_of(data, list(range(first, min(total, first + batch_size))))

    # --- metrics and records

    def metrics(self, loss_sum: float, weight_sum: float, correct_sum: float) -> dict[str, float]:
        loss = loss_sum / max(weight_sum, 1e-12)
        return {"loss": loss, "bits_per_dim": loss / math.log(2), "accuracy": correct_sum / max(weight_sum, 1e-12)}

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {
            **super().describe(),
            "variant": self.variant,
            "data_dir": str(self._folder),
            "data_sha256": m["data_sha256"],
            "images": {name: entry["shape"][0] for name, entry in m["splits"].items()},
            "windows_per_image": self.windows_per_image,
            "order": "row, column, channel",
            "test_split": "none: test requests evaluate valid (the paper's held-out set)",
            "source": {k: m["source"].get(k) for k in ("origin", "verified", "checks_skipped")},
        }
