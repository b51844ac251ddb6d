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
* what each layer's attention holds per query and head, as its spec states it (attention/spec.py):
  `memory_per_query`, the weights it builds (x `WEIGHT_COPIES`) and its other tensors, and
  `memory_vectors`, an attention over chunks' sorted and gathered vectors (n_rounds x d_head x
  `VECTOR_COPIES`);
* standard layers keep the activations and the attention's terms for the backward (summed over the
  layers), recomputing reversible layers one layer's at a time; under bf16 autocast the activations
  and vectors count 2 bytes (not measured);
* transient terms (a spec's `MemoryTerm` marked so, such as LSH's hash projections: computed
  without gradients and freed before the attention): they exist next to the activations but not
  next to the attention's own tensors or the logits, so the step's peak counts the larger of the
  two phases.
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


class Term(tuple):
    """(bytes, 'what (the option that shrinks it)'), one of the estimate's terms; `transient`: freed
    before the attention (a spec's transient `MemoryTerm`)."""

    transient: bool

    def __new__(cls, size: int, what: str, transient: bool = False) -> "Term":
        term = super().__new__(cls, (size, what))
        term.transient = transient
        return term


def autocasts_bf16(trainer: Any) -> bool:
    """The run computes under bf16 autocast: trainer.precision=bf16, or auto on a CUDA device."""
    precision = str(trainer.get("precision", "auto"))
    if precision != "auto":
        return precision == "bf16"
    return runs_on_cuda(str(trainer.get("device", "auto")))


def recomputes(cfg: Any) -> bool:
    """Reversible layers that rebuild their inputs in the backward: memory constant in depth."""
    layer = cfg.get("layer", None)
    return layer is not None and layer.get("name") == "reversible" and bool(layer.get("recompute", True))


def activation_floats(cfg: Any) -> int:
    """Floats per token the layers keep for the backward: 14 d_model + 4 d_ff per standard layer;
    with recomputing reversible layers, one layer's (its feed-forward in model.ff_chunks chunks) and
    8 d_model per layer (measured: a reversible step still grows with depth by about that much)."""
    model = cfg.model
    d, d_ff, layers = int(model.d_model), int(model.d_ff), max(1, int(model.n_layers))
    if recomputes(cfg):
        return 14 * d + 4 * d_ff // max(1, int(model.get("ff_chunks", 1) or 1)) + 8 * d * layers
    return (14 * d + 4 * d_ff) * layers


def memory_terms(cfg: Any) -> list[Term]:
    """[(bytes, 'what (the option that shrinks it)')] of the estimate's terms, the process's first."""
    model, task, trainer = cfg.model, cfg.task, cfg.trainer
    vocab = int(task.get("vocab_size", None) or 256)
    seq, batch, d, d_ff, layers = int(task.seq_len), int(trainer.batch_size), int(model.d_model), int(model.d_ff), int(model.n_layers)
    heads = int(model.n_heads)
    d_head = int(model.get("d_head", None) or d // max(1, heads))
    # bf16 autocast halves the activations and vectors (not measured; the softmax and the loss stay fp32)
    activation_bytes = 2 if autocasts_bf16(trainer) else 4
    embeddings = vocab * d * (1 if model.get("tie_embeddings") else 2) + seq * d
    params = embeddings + layers * (4 * d * d + 2 * d * d_ff)
    terms = [
        Term(PROCESS, "the process itself (Python, PyTorch, the data)"),
        Term(params * 16, f"the parameters with their gradients and Adam's moments ({params:,} parameters:"
                          f" reduce model.d_model, model.d_ff, model.n_layers or task.vocab_size)"),
        Term(batch * seq * vocab * 4 * LOGIT_COPIES // max(1, int(model.get("loss_chunks", 1) or 1)),
             "the logits, trainer.batch_size x task.seq_len x task.vocab_size (reduce trainer.batch_size"
             " or raise model.loss_chunks)"),
        Term(batch * seq * activation_floats(cfg) * activation_bytes, "the activations, trainer.batch_size x"
             " task.seq_len x (14 model.d_model + 4 model.d_ff) per layer (reduce trainer.batch_size or model.d_model)"),
    ]
    # a standard layer keeps its attention's tensors until the backward (summed over the layers); a
    # recomputing reversible layer holds one layer's at a time (the largest); a transient term is
    # freed before the next layer (the largest)
    recompute = recomputes(cfg)

    def combine(held: int, layer: int, transient: bool = False) -> int:
        return max(held, layer) if recompute or transient else held + layer

    # the layers whose spec can form the length x length weights first: their terms are listed first
    attentions = sorted(layer_attentions(model, cfg.attention), key=lambda a: not spec_of(a).quadratic_memory)
    per_query: dict[str, tuple[int, bool]] = {}  # what -> (floats per query and head, transient)
    vectors = 0  # an attention over chunks' sorted and gathered vectors per query and head
    for attention in attentions:
        spec = spec_of(attention)
        for term in spec.memory_per_query(attention, seq):
            held = per_query.get(term.what, (0, term.transient))[0]
            per_query[term.what] = (combine(held, int(term.floats), term.transient), term.transient)
        vectors = combine(vectors, int(spec.memory_vectors(attention, d_head)))
    terms += [Term(batch * heads * seq * floats * 4, what, transient)
              for what, (floats, transient) in per_query.items()]
    if vectors:
        terms.append(Term(batch * heads * seq * vectors * activation_bytes,
                          "the attention's sorted and gathered vectors, trainer.batch_size x model.n_heads x"
                          " task.seq_len x attention.n_rounds x d_head (reduce trainer.batch_size or task.seq_len)"))
    return terms


def estimate(terms: list[Term]) -> int:
    """The step's peak: the process, the parameters and the activations, plus the larger phase: the
    transient terms (during the forward), or the logits and the attention's held terms."""
    process, parameters, logits, activations, *attention = terms
    transient = max([term[0] for term in attention if term.transient], default=0)
    held = logits[0] + sum(term[0] for term in attention if not term.transient)
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


# Keeping freed memory in malloc (runtime.keep_freed_cpu_memory) makes steps faster but fragments the
# heap: `task=text task.seq_len=20000 attention.chunk_length=4` (default model, batch 8) peaked at
# 4.15 GiB with glibc's defaults and 7.45 GiB keeping freed memory (2026-12-03, the 2-core VM), while
# the Table 2 cpu step went from 0.97 to 1.18 GB. A run keeps freed memory only while twice its
# estimate stays under a quarter of the host's memory, so the estimate above needs no such term.
FRAGMENTATION = 2.0
HOST_SHARE = 0.25


def keeps_freed_memory(cfg: Any) -> bool:
    """Whether a CPU run should keep freed memory for speed: small against the host's memory."""
    host = host_memory()
    return host is not None and FRAGMENTATION * estimate(memory_terms(cfg)) <= HOST_SHARE * host


def check_run_fits(cfg: Any) -> str | None:
    """Before a run starts. On the CPU a run past memory is killed by the kernel without a word, so
    an estimate above the host's memory is refused (check_fits: UserError). On CUDA the allocator
    raises an error the runner reports in one line (allocation_failure), and the estimate's constants
    were measured on the CPU only (docs/runner.md, "Memory estimate"), so there it returns a warning
    line instead of refusing; None when the run fits or nothing is known."""
    device = str(cfg.trainer.device)
    available = available_memory(device)
    if not runs_on_cuda(device):
        check_fits(cfg, available)
        return None
    try:
        check_fits(cfg, available)
    except UserError as e:
        return f"warning: {e} (an estimate measured on the CPU; the run goes ahead)"
    return None


def runs_on_cuda(device: str) -> bool:
    """A trainer.device value that puts the run on a CUDA device (auto: when one is present)."""
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    import torch  # only here: the check runs before the trainer imports it

    return torch.cuda.is_available()


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
