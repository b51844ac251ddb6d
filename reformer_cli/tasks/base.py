"""What every task provides: batches for training and evaluation, and its metrics.

A language-model batch is (inputs, targets, weights), each `[batch, length]`: the model reads
`inputs`, predicts `targets` position by position, and the loss and accuracy count only where
`weights` is non-zero. Training batches are a pure function of (seed, step, rank), so a resumed run
sees exactly the batches it would have seen, with no sampler state to save. Under data parallelism
rank r of N trains on rows [r * B, (r + 1) * B) of the global batch of N * B rows of that step, so a
run's data does not depend on how many processes share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch


@dataclass
class Batch:
    inputs: torch.Tensor  # long [batch, length]
    targets: torch.Tensor  # long [batch, length]
    weights: torch.Tensor  # float [batch, length]

    def to(self, device: torch.device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in (self.inputs, self.targets, self.weights)))

    @property
    def size(self) -> int:
        return self.inputs.shape[0]


def shift_right(sequences: torch.Tensor, start_token: int) -> torch.Tensor:
    """Model inputs for next-token prediction: [start, s_0, ..., s_{L-2}] (trax's ShiftRight), so
    inputs and targets keep the sequence length (a multiple of the chunk length)."""
    start = torch.full_like(sequences[:, :1], start_token)
    return torch.cat([start, sequences[:, :-1]], dim=1)


class Task:
    name: str
    vocab_size: int
    seq_len: int
    # The headline metric in summaries and tables: 'accuracy', 'bpc' or 'bits_per_dim'.
    metric: str = "loss"

    def check_data(self) -> None:
        """Raise DataError (one line: what, where, how to get it) before any training starts."""

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Batch:
        """Rows [rank * batch_size, (rank + 1) * batch_size) of step `step`'s global batch."""
        raise NotImplementedError

    def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[Batch]:
        """Batches covering `split` ('valid' or 'test'); at most `max_batches` of them if > 0."""
        raise NotImplementedError

    def eval_batch_count(self, split: str, batch_size: int) -> int | None:
        """How many batches `eval_batches(split, batch_size)` yields, if known (for progress)."""
        return None

    def metrics(self, loss_sum: float, weight_sum: float, correct_sum: float) -> dict[str, float]:
        """Metrics from summed totals. Bits = nats / ln 2."""
        loss = loss_sum / max(weight_sum, 1e-12)
        return {"loss": loss, "bits": loss / math.log(2), "accuracy": correct_sum / max(weight_sum, 1e-12)}

    def describe(self) -> dict[str, Any]:
        """Task facts recorded in every summary (name, variant, data checksum)."""
        return {"name": self.name, "seq_len": self.seq_len, "vocab_size": self.vocab_size, "metric": self.metric}
