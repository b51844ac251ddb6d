"""A rough up-front estimate of a run's memory, so that a run that cannot fit is refused in one line
naming its largest term (and the option that shrinks it) instead of failing in the allocator, and
the one line for an allocation failure that happens anyway (`allocation_failure`).

The terms (bytes, float32): parameters x 4 x 4 (weights, gradients, Adam's two moments); the
logits, batch x seq_len x vocab x 4 (/ model.loss_chunks); full attention's weights, batch x heads x
seq_len^2 x 4; what an attention's spec counts per query and head (`memory_per_query`: LSH's and
local attention's window weights, LSH's hash projections), x batch x heads x seq_len x 4. It is a
lower bound of what a step needs; the check refuses only runs whose estimate alone exceeds the
device's total memory.
"""

from __future__ import annotations

import os
from typing import Any

from .attention.per_layer import layer_attentions
from .attention.registry import spec_of
from .errors import UserError

ALLOCATOR_MESSAGES = ("can't allocate memory", "not enough memory", "defaultcpuallocator", "out of memory")


def memory_terms(cfg: Any) -> list[tuple[int, str]]:
    """[(bytes, 'what (the option that shrinks it)')] of the estimate's terms."""
    model, task, trainer = cfg.model, cfg.task, cfg.trainer
    vocab = int(task.get("vocab_size", None) or 256)
    seq, batch, d, d_ff, layers = int(task.seq_len), int(trainer.batch_size), int(model.d_model), int(model.d_ff), int(model.n_layers)
    embeddings = vocab * d * (1 if model.get("tie_embeddings") else 2) + seq * d
    params = embeddings + layers * (4 * d * d + 2 * d * d_ff)
    terms = [
        (params * 16, f"the parameters with their gradients and Adam's moments ({params:,} parameters:"
                      f" reduce model.d_model, model.d_ff, model.n_layers or task.vocab_size)"),
        (batch * seq * vocab * 4 // max(1, int(model.get("loss_chunks", 1) or 1)),
         "the logits, trainer.batch_size x task.seq_len x task.vocab_size (reduce trainer.batch_size"
         " or raise model.loss_chunks)"),
        (batch * seq * d * 4 * 2 * max(1, layers), "the activations, trainer.batch_size x task.seq_len x"
         " model.d_model per layer (reduce trainer.batch_size or model.d_model)"),
    ]
    attentions = layer_attentions(model, cfg.attention)
    if any(spec_of(attention).quadratic_memory for attention in attentions):
        terms.append((batch * int(model.n_heads) * seq * seq * 4,
                      "full attention's weights, trainer.batch_size x model.n_heads x task.seq_len^2"
                      " (reduce trainer.batch_size or task.seq_len, or use an attention over chunks)"))
    per_query: dict[str, int] = {}  # the largest of each term over the layers' attentions
    for attention in attentions:
        for floats, what in spec_of(attention).memory_per_query(attention, seq):
            per_query[what] = max(per_query.get(what, 0), int(floats))
    terms += [(batch * int(model.n_heads) * seq * floats * 4, what) for what, floats in per_query.items()]
    return terms


def host_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_fits(cfg: Any, available: int | None) -> None:
    """UserError (one line) when the estimate exceeds `available` bytes (None: not known)."""
    terms = memory_terms(cfg)
    total = sum(size for size, _ in terms)
    if available is None or total <= available:
        return
    size, what = max(terms)
    raise UserError(f"this run needs at least {_gib(total)} but the device has {_gib(available)}:"
                    f" the largest term is {what}, {_gib(size)}")


def is_allocation_failure(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in ALLOCATOR_MESSAGES)


def allocation_failure(cfg: Any) -> str:
    """The one line for an allocation that failed, naming the estimate's largest term."""
    try:
        size, what = max(memory_terms(cfg))
        return f"out of memory: the largest term of this run is {what}, about {_gib(size)}"
    except Exception:  # a config the estimate cannot read
        return "out of memory: reduce trainer.batch_size, task.seq_len or the model's size"


def available_memory(device: str) -> int | None:
    """The total memory of the device a run on `device` (a trainer.device value) uses."""
    if device.startswith("cuda") or device == "auto":
        import torch

        if torch.cuda.is_available():
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            try:
                return torch.cuda.get_device_properties(index).total_memory
            except (RuntimeError, AssertionError):
                return None  # a missing device is reported by the trainer
        if device != "auto":
            return None
    return host_memory()
