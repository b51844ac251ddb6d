"""A task defined outside the package, in this one module (plus tests/fixtures/conf/task/counting.yaml):
count on from a random start, modulo the vocabulary. Its headline metric, `hit_rate`, is its own.
tests/tasks/test_task_spec.py registers it through the public API and trains and evaluates it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch

from reformer_cli.config import _positive
from reformer_cli.tasks import TaskSpec
from reformer_cli.tasks.base import Batch, Task, shift_right


@dataclass
class CountingTaskConfig:
    name: str = "counting"
    seq_len: int = 16
    vocab_size: int = 11
    eval_sequences: int = 16


class CountingTask(Task):
    name = "counting"
    metric = "hit_rate"

    def __init__(self, cfg: Any, seed: int):
        self.seq_len, self.vocab_size, self.seed = int(cfg.seq_len), int(cfg.vocab_size), seed
        self.eval_sequences = int(cfg.eval_sequences)

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        starts = torch.randint(0, self.vocab_size, (n, 1), generator=generator)
        sequences = (starts + torch.arange(self.seq_len)) % self.vocab_size
        return Batch(shift_right(sequences, 0), sequences, torch.ones(sequences.shape))

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Batch:
        rows = self.batch(batch_size * world_size, torch.Generator().manual_seed(self.seed * 1000 + step))
        return Batch(*(t[rank * batch_size : (rank + 1) * batch_size] for t in (rows.inputs, rows.targets, rows.weights)))

    def eval_batches(self, split: str, batch_size: int, max_batches: int = 0) -> Iterator[Batch]:
        rows = self.batch(self.eval_sequences, torch.Generator().manual_seed(len(split)))
        for i, start in enumerate(range(0, self.eval_sequences, batch_size)):
            if max_batches and i >= max_batches:
                return
            yield Batch(*(t[start : start + batch_size] for t in (rows.inputs, rows.targets, rows.weights)))

    def metrics(self, loss_sum: float, weight_sum: float, correct_sum: float) -> dict[str, float]:
        return {"loss": loss_sum / weight_sum, "hit_rate": correct_sum / weight_sum}


class CountingSpec(TaskSpec):
    name = "counting"
    schema = CountingTaskConfig
    metric = "hit_rate"
    metrics = {"loss": False, "hit_rate": True}

    def check(self, cfg: Any) -> None:
        _positive("task.vocab_size", cfg.vocab_size)

    def build(self, cfg: Any, seed: int) -> Task:
        return CountingTask(cfg, seed)


SPEC = CountingSpec()
