"""The optimizer, its learning-rate schedule and one optimizer step over micro-batches: built and
taken once here, by the trainer (train.py) and by the benchmarks, which time and measure the step
`reformer run` takes."""

from __future__ import annotations

import contextlib
import math
from typing import Callable, ContextManager, Iterable

import torch

from .config import TrainerConfig
from .distributed import World, all_reduce_sum
from .model.reformer import LossTotals
from .runtime import autocast
from .tasks.base import Batch

# forward(inputs, targets, weights, seed=) -> LossTotals: the model (or its DDP / compiled wrapper)
Forward = Callable[..., LossTotals]


def warmup_of(trainer: TrainerConfig) -> int:
    """The warmup steps: `trainer.warmup_steps`, or a tenth of `trainer.max_steps` when it is null."""
    if trainer.warmup_steps is not None:
        return int(trainer.warmup_steps)
    return int(trainer.max_steps) // 10


def lr_at(step: int, trainer: TrainerConfig) -> float:
    """Learning rate at `step` (1-based). `trainer.lr` is the peak.

    rsqrt: lr * min(1, step / warmup) * sqrt(warmup / max(step, warmup)), i.e. trax's
    `constant * linear_warmup * rsqrt_decay` (docs/reference-code.md, "Optimizer and schedule")
    with lr = constant / sqrt(warmup).
    """
    warmup = warmup_of(trainer)
    warm = min(1.0, step / warmup) if warmup > 0 else 1.0
    if trainer.schedule == "constant":
        return trainer.lr * warm
    if trainer.schedule == "rsqrt":
        return trainer.lr * warm * math.sqrt(max(warmup, 1) / max(step, warmup, 1))
    # cosine decay to zero after warmup
    progress = min(1.0, max(0, step - warmup) / max(1, trainer.max_steps - warmup))
    return trainer.lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def group_settings(trainer: TrainerConfig) -> list[dict]:
    """The hyperparameters of the two parameter groups (matrices, then norms and biases) that the
    config sets; lr is set every step (`lr_at`)."""
    shared = {} if trainer.optimizer == "adafactor" else {"betas": tuple(trainer.betas), "eps": trainer.eps}
    return [{"weight_decay": trainer.weight_decay, **shared}, {"weight_decay": 0.0, **shared}]


def build_optimizer(trainer: TrainerConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW / Adam / Adafactor. Weight decay applies to matrices only (not norms, biases)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": params, **settings} for params, settings in zip((decay, no_decay), group_settings(trainer))]
    if trainer.optimizer == "adafactor":
        return torch.optim.Adafactor(groups, lr=trainer.lr)
    cls = torch.optim.AdamW if trainer.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=trainer.lr)


def apply_settings(optimizer: torch.optim.Optimizer, trainer: TrainerConfig) -> None:
    """Set the config's hyperparameters on an optimizer whose state was loaded from a checkpoint
    (`load_state_dict` restores the saved ones; a resumed run that changes them means the new)."""
    for group, settings in zip(optimizer.param_groups, group_settings(trainer)):
        group.update(settings)


def train_step(
    forward: Forward,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    micro_batches: Iterable[tuple[Batch, int]],
    *,
    grad_accum: int = 1,
    grad_clip: float,
    device: torch.device,
    precision: str,
    world: World = World(),
    no_sync: Callable[[], ContextManager] | None = None,
    watch: ContextManager | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over `grad_accum` micro-batches, each a (batch on `device`, forward seed).

    The loss is the mean over the weighted targets of the *global* batch: DDP averages the
    processes' gradients, so each scales its sum by world size / global weight. `no_sync` (DDP's)
    skips the gradient all-reduce on all but the last micro-batch. Gradients are clipped to
    `grad_clip` (0: not clipped; the norm is still measured), then the optimizer steps (None: the
    gradients are only cleared). `watch` (e.g. a saved-tensor meter) is entered around each
    forward. Returns ([loss_sum, weight_sum, correct_sum] summed over processes, gradient norm)."""
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for micro, (batch, seed) in enumerate(micro_batches):
        global_weight = all_reduce_sum(batch.weights.sum().double(), world).clamp_min(1e-9)
        last = micro == grad_accum - 1
        sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
        with sync:
            with autocast(device, precision), (watch if watch is not None else contextlib.nullcontext()):
                totals = forward(batch.inputs, batch.targets, batch.weights, seed=seed)
            loss = totals.loss_sum * (world.size / global_weight / grad_accum)
            loss.backward()
        sums += torch.stack([totals.loss_sum, totals.weight_sum, totals.correct_sum]).detach().double()
    max_norm = grad_clip if grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    else:
        model.zero_grad(set_to_none=True)
    return all_reduce_sum(sums, world), grad_norm
