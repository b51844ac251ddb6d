"""Evaluation over a task split: summed loss, weights and correct predictions -> task metrics."""

from __future__ import annotations

from typing import Any, Callable

import torch

from .distributed import World, all_reduce_sum
from .model.context import derive_seed
from .model.reformer import ReformerLM
from .runtime import autocast
from .tasks.base import Task


@torch.no_grad()
def evaluate_totals(
    model: ReformerLM,
    task: Task,
    *,
    split: str,
    batch_size: int,
    max_batches: int,
    device: torch.device,
    precision: str,
    seed: int,
    on_batch: Callable[[int], Any] | None = None,
    world: World = World(),
) -> tuple[float, float, float, int]:
    """(loss_sum, weight_sum, correct_sum, batches) of `model` on `split`. Randomness (LSH
    rotations) comes from `seed` and the batch index only, so the same call gives the same numbers.
    With several processes each takes every `world.size`-th batch and the sums are added up, so
    every process returns the same totals (`batches` counts this process's batches)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    batches = 0
    try:
        with autocast(device, precision):
            for i, batch in enumerate(task.eval_batches(split, batch_size, max_batches)):
                if i % world.size != world.rank:
                    continue
                batch = batch.to(device)
                totals = model.loss(batch.inputs, batch.targets, batch.weights, seed=derive_seed(seed, "eval", i))
                sums += torch.stack([totals.loss_sum, totals.weight_sum, totals.correct_sum]).double()
                batches += 1
                if on_batch is not None:
                    on_batch(batches)
    finally:
        model.train(was_training)
    all_reduce_sum(sums, world)
    loss_sum, weight_sum, correct_sum = sums.tolist()
    return loss_sum, weight_sum, correct_sum, batches


def evaluate(
    model: ReformerLM,
    task: Task,
    *,
    split: str,
    batch_size: int,
    max_batches: int,
    device: torch.device,
    precision: str,
    seed: int,
    on_batch: Callable[[int], Any] | None = None,
    world: World = World(),
) -> dict[str, float]:
    """Metrics of `model` on `split` (see `evaluate_totals`)."""
    loss_sum, weight_sum, correct_sum, _ = evaluate_totals(
        model, task, split=split, batch_size=batch_size, max_batches=max_batches, device=device,
        precision=precision, seed=seed, on_batch=on_batch, world=world,
    )
    return task.metrics(loss_sum, weight_sum, correct_sum)


def eval_seed_of(attention: Any) -> int:
    """The seed evaluation draws LSH rotations from (attention.eval_seed; 0 for full attention)."""
    return int(getattr(attention, "eval_seed", 0) or 0)
