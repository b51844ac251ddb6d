"""The duplication task of the paper's Table 2 (section 2.1).

Each sequence is `0 w 0 w` with `w` uniform over {1..N}^n, n = seq_len / 2 - 1 (N = 127 and
n = 511 in the paper, length 1024). The model is a language model; loss and accuracy count only
the predictions of the second copy of `w`, the only part that can be predicted. Generated on the
fly from seeded generators: nothing to download.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from ..primitives.context import derive_seed
from .base import Batch, Task, shift_right

SEPARATOR = 0


class SyntheticTask(Task):
    name = "synthetic"
    metric = "accuracy"

    def __init__(self, cfg: Any, seed: int):
        self.seq_len, self.vocab_size = int(cfg.seq_len), int(cfg.vocab_size)
        self.word_len = self.seq_len // 2 - 1
        self.seed = seed
        self.eval_sequences, self.eval_seed = int(cfg.eval_sequences), int(cfg.eval_seed)

    def sequences(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` sequences `0 w 0 w`, long [n, seq_len]."""
        w = torch.randint(1, self.vocab_size, (n, self.word_len), generator=generator)
        sep = torch.full((n, 1), SEPARATOR, dtype=torch.long)
        return torch.cat([sep, w, sep, w], dim=1)

    def batch_of(self, seqs: torch.Tensor) -> Batch:
        weights = torch.zeros(seqs.shape, dtype=torch.float32)
        weights[:, -self.word_len :] = 1.0  # the second copy of w
        return Batch(shift_right(seqs, SEPARATOR), seqs, weights)

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Batch:
        """Rank `rank`'s slice of the global batch of `batch_size * world_size` sequences of `step`:
        N processes at batch B see exactly the data of one process at batch N * B."""
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "synthetic", step))
        seqs = self.sequences(batch_size * world_size, gen)
        return self.batch_of(seqs[rank * batch_size : (rank + 1) * batch_size])

    def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[Batch]:
        # 'valid' and 'test' are two fixed sets, disjoint from training with overwhelming probability
        gen = torch.Generator().manual_seed(derive_seed(self.eval_seed, "synthetic", split))
        seqs = self.sequences(self.eval_sequences, gen)
        for i, start in enumerate(range(0, len(seqs), batch_size)):
            if max_batches and i >= max_batches:
                return
            yield self.batch_of(seqs[start : start + batch_size])

    def eval_batch_count(self, split: str, batch_size: int) -> int:
        return -(-self.eval_sequences // batch_size)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "word_len": self.word_len, "eval_sequences": self.eval_sequences}
