"""Evaluation over a task split: summed loss, weights and correct predictions -> task metrics."""

from __future__ import annotations

from typing import Any, Callable

import torch

from .distributed import World, all_reduce_sum
from .model.reformer import ReformerLM
from .primitives.context import derive_seed
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
    self_weight: dict | None = None,
) -> tuple[float, float, float, int]:
    """(loss_sum, weight_sum, correct_sum, batches) of `model` on `split`. Randomness (LSH
    rotations) comes from `seed` and the batch index only, so the same call gives the same numbers.
    With several processes each takes every `world.size`-th batch and the sums are added up, so
    every process returns the same totals (`batches` counts this process's batches).

    `self_weight`: a dict to fill with the mean attention weight of a query on its own position
    (attention/self_weight.py), over heads and layers: `all` over every position, `targets` over
    the positions whose prediction is scored (weighted as the loss)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    diag = torch.zeros(4, dtype=torch.float64, device=device)  # sum all, count all, sum targets, weight
    batches = 0
    try:
        with autocast(device, precision):
            for i, batch in enumerate(task.eval_batches(split, batch_size, max_batches)):
                if i % world.size != world.rank:
                    continue
                batch = batch.to(device)
                diagnostics = None if self_weight is None else {"self_weight": []}
                totals = model.loss(batch.inputs, batch.targets, batch.weights, seed=derive_seed(seed, "eval", i),
                                    diagnostics=diagnostics)
                sums += torch.stack([totals.loss_sum, totals.weight_sum, totals.correct_sum]).double()
                if diagnostics is not None:
                    p = torch.stack(diagnostics["self_weight"]).mean(dim=0).double()  # [batch, length]
                    w = batch.weights.double()
                    diag += torch.stack([p.sum(), torch.tensor(p.numel(), dtype=torch.float64, device=device),
                                         (p * w).sum(), w.sum()])
                batches += 1
                if on_batch is not None:
                    on_batch(batches)
    finally:
        model.train(was_training)
    all_reduce_sum(sums, world)
    if self_weight is not None:
        all_reduce_sum(diag, world)
        total, count, on_targets, weight = diag.tolist()
        self_weight.update(all=total / max(count, 1.0), targets=on_targets / max(weight, 1e-30))
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
