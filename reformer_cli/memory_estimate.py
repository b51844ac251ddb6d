"""An up-front estimate of a run's peak memory, so that a run that cannot fit is refused in one line
(the estimate, the memory there is, the largest term and what shrinks it) instead of being killed
by the kernel or failing in the allocator, and the one line for an allocation failure that happens
anyway (`allocation_failure`).

The estimate is calibrated on measured peaks of one training step (forward, backward, AdamW; the
table in docs/runner.md, "Memory estimate"): it is meant to sit at or somewhat above the real peak.
Its terms (bytes, float32):

* the process itself (Python, PyTorch, the data pipeline), `PROCESS`;
* the parameters x 4 x 4 (weights, gradients, Adam's two moments);
* the layers' activations, batch x seq_len x (14 d_model + 4 d_ff) per layer (what autograd keeps
  of the embeddings, layer norms, projections, residuals and feed-forward);
* the logits, batch x seq_len x vocab x `LOGIT_COPIES` (/ model.loss_chunks);
* what an attention holds per query and head: its weights (full attention's when it builds them,
  a spec's `memory_per_query` window weights) x `WEIGHT_COPIES`, and an attention over chunks'
  sorted and gathered vectors, n_rounds x d_head x `VECTOR_COPIES`;
* transient terms (LSH's hash projections, computed without gradients and freed before the
  attention): they exist next to the activations but not next to the attention's own tensors or the
  logits, so the step's peak counts the larger of the two phases.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from .attention.per_layer import layer_attentions
from .attention.registry import spec_of
from .errors import UserError

ALLOCATOR_MESSAGES = ("can't allocate memory", "not enough memory", "defaultcpuallocator", "out of memory")

PROCESS = 450 << 20  # measured 0.37-0.41 GiB for a step at seq_len 32 on CPU
LOGIT_COPIES = 4  # the logits, their log-softmax and the gradients of both
WEIGHT_COPIES = 4  # an attention's weights: scores, masked scores, probabilities, their gradient
VECTOR_COPIES = 6  # per round: sorted queries/keys and values, the look-back's keys and values, the output
# a spec's per-query term that is computed without gradients and freed before the attention
TRANSIENT = ("hash projections",)


def _is_transient(what: str) -> bool:
    return any(name in what for name in TRANSIENT)


def _builds_full_weights(attention: Any) -> bool:
    """Full attention builds its batch x heads x seq_len^2 weights only with shared QK or attention
    dropout (attention/full.py); otherwise PyTorch's SDPA computes it in memory linear in seq_len."""
    return bool(attention.get("shared_qk", False)) or float(attention.get("dropout", 0.0) or 0.0) > 0


def memory_terms(cfg: Any) -> list[tuple[int, str]]:
    """[(bytes, 'what (the option that shrinks it)')] of the estimate's terms, the process's first."""
    model, task, trainer = cfg.model, cfg.task, cfg.trainer
    vocab = int(task.get("vocab_size", None) or 256)
    seq, batch, d, d_ff, layers = int(task.seq_len), int(trainer.batch_size), int(model.d_model), int(model.d_ff), int(model.n_layers)
    heads = int(model.n_heads)
    d_head = int(model.get("d_head", None) or d // max(1, heads))
    embeddings = vocab * d * (1 if model.get("tie_embeddings") else 2) + seq * d
    params = embeddings + layers * (4 * d * d + 2 * d * d_ff)
    terms = [
        (PROCESS, "the process itself (Python, PyTorch, the data)"),
        (params * 16, f"the parameters with their gradients and Adam's moments ({params:,} parameters:"
                      f" reduce model.d_model, model.d_ff, model.n_layers or task.vocab_size)"),
        (batch * seq * vocab * 4 * LOGIT_COPIES // max(1, int(model.get("loss_chunks", 1) or 1)),
         "the logits, trainer.batch_size x task.seq_len x task.vocab_size (reduce trainer.batch_size"
         " or raise model.loss_chunks)"),
        (batch * seq * (14 * d + 4 * d_ff) * 4 * max(1, layers), "the activations, trainer.batch_size x"
         " task.seq_len x (14 model.d_model + 4 model.d_ff) per layer (reduce trainer.batch_size or model.d_model)"),
    ]
    attentions = layer_attentions(model, cfg.attention)
    if any(spec_of(attention).quadratic_memory and _builds_full_weights(attention) for attention in attentions):
        terms.append((batch * heads * seq * seq * 4 * WEIGHT_COPIES,
                      "full attention's weights, trainer.batch_size x model.n_heads x task.seq_len^2"
                      " (reduce trainer.batch_size or task.seq_len, or use an attention over chunks)"))
    per_query: dict[str, int] = {}  # the largest of each term over the layers' attentions
    rounds = 0  # an attention over chunks (one with per-query terms): its rounds (1 without hashing)
    for attention in attentions:
        counted = spec_of(attention).memory_per_query(attention, seq)
        for floats, what in counted:
            copies = 1 if _is_transient(what) else WEIGHT_COPIES
            per_query[what] = max(per_query.get(what, 0), int(floats) * copies)
        if counted:
            rounds = max(rounds, int(attention.get("n_rounds", 1) or 1))
    terms += [(batch * heads * seq * floats * 4, what) for what, floats in per_query.items()]
    if rounds:
        terms.append((batch * heads * seq * rounds * d_head * VECTOR_COPIES * 4,
                      "the attention's sorted and gathered vectors, trainer.batch_size x model.n_heads x"
                      " task.seq_len x attention.n_rounds x d_head (reduce trainer.batch_size or task.seq_len)"))
    return terms


def estimate(terms: list[tuple[int, str]]) -> int:
    """The step's peak: the process, the parameters and the activations, plus the larger phase: the
    transient terms (during the forward), or the logits and the attention's held terms."""
    process, parameters, logits, activations, *attention = terms
    transient = max([size for size, what in attention if _is_transient(what)], default=0)
    held = logits[0] + sum(size for size, what in attention if not _is_transient(what))
    return process[0] + parameters[0] + activations[0] + max(transient, held)


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
    total = estimate(terms)
    if available is None or total <= available:
        return
    size, what = max(terms[1:])
    raise UserError(f"this run needs about {_gib(total)} but the device has {_gib(available)}:"
                    f" the largest term is {what}, {_gib(size)}{_smaller_batch(cfg, available)}")


def _smaller_batch(cfg: Any, available: int) -> str:
    """'; trainer.batch_size=N fits (about X)': the largest batch under the current one that fits, or ''."""
    batch = int(cfg.trainer.batch_size)
    if batch <= 1:
        return ""
    trial = copy.deepcopy(cfg)
    fits, low, high = None, 1, batch - 1
    while low <= high:  # the estimate grows with the batch
        middle = (low + high) // 2
        trial.trainer.batch_size = middle
        need = estimate(memory_terms(trial))
        if need <= available:
            fits, low = (middle, need), middle + 1
        else:
            high = middle - 1
    return "" if fits is None else f"; trainer.batch_size={fits[0]} fits (about {_gib(fits[1])})"


def is_allocation_failure(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in ALLOCATOR_MESSAGES)


def allocation_failure(cfg: Any) -> str:
    """The one line for an allocation that failed, naming the estimate's largest term."""
    try:
        size, what = max(memory_terms(cfg)[1:])
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
