"""Fast LSH attention: Triton kernels for CUDA computing exactly `reformer_cli.attention.lsh`.

    lsh_attention_from_buckets(qk, v, buckets, settings=None, *, n_buckets, ...)   # same signature
    lsh_attention(qk, v, rotations, settings=None, ...)                            # same signature
    hash_buckets(qk, rotations)                                                   # same result

The reference (attention/lsh.py) defines what is right; these functions compute the same thing for
the same buckets / rotations, forward and backward, with far less memory traffic:

1. hash: a fused projection + argmax kernel per bucket factor (hashing.py);
2. sort: int16 keys (padding and masked keys in bucket n_buckets) and one stable segmented sort per
   (batch, head, round); the int32 permutation is saved for the backward, with, when the setting
   reads them, each slot's bucket run (first and last slot of its bucket, for the same-bucket rule)
   and each position's slot in every round (for the duplicate correction) (hashing.py);
3. attend: one program per chunk of a round gathers its queries and its window's keys/values by
   position, applies the reference's masks, subtracts log N_ij, softmax in fp32, and scatters o^(r)
   and its softmax statistics to original positions (forward.py; the masks in runtime.py);
4. merge the rounds (eq. 14) in one pass, writing o and the statistics of the union of all rounds'
   slots (forward.py);
5. backward: recompute probabilities from those statistics with the same masks and log N_ij, one
   program per chunk computes dQ of its window and dK, dV of its keys without atomics, rounds summed
   by fp32 atomics (backward.py).

Both bucket rules are computed, each with or without the duplicate correction:
`attend_across_buckets=False` (the paper's rule, the default: a query attends only the slots of its
own round whose key shares its bucket; slots are sorted by bucket, so those are the slots of the
window inside the run of the query's bucket) and True (every slot of the window, trax v2 / HF);
`dedup=True` (the default, the paper's Appendix A) subtracts log N_ij, N_ij the number of attended
slots of query i over all rounds that hold key j, counted in each tile over the rounds from every
position's slot per round (runtime.log_duplicates). The rule and the count are compile-time
switches: without them the kernels are those of attention across buckets without the correction.

Settings the kernels do not cover fall back to the reference with one log line (once per reason):
dropout on attention probabilities, n_chunks_before > MAX_CHUNKS_BEFORE, chunk_length or
d_head > MAX_TILE, the duplicate correction with rounds x (n_chunks_before + 1) > MAX_DUPLICATES
(the counts are fp16 in registers), dtypes other than fp16 / bf16 / fp32, tensors the kernels cannot
reach (a CPU tensor without TRITON_INTERPRET=1), and more than one round under
`torch.use_deterministic_algorithms(True)` (the rounds' gradients are summed by atomics, in no fixed
order; one round is deterministic). Lengths that are not a multiple of the chunk, padding
masks, causal on/off, wrap-around, any n_chunks_before up to the bound and any number of rounds are
supported.

Exactness: outputs and gradients equal the reference evaluated in exact arithmetic (the reference
in fp64) to fp32 rounding, at every position (on a GPU fp32 inputs multiply as tf32x3, about fp32
accuracy; bf16 / fp16 products are exact and the probabilities are rounded to the input dtype for
the tensor-core products, as FlashAttention does). The reference in fp32 has two rounding artefacts the
kernels avoid (they keep softmax statistics as (max, log-sum) pairs, see forward.py): where a
query's only candidate is itself and its window holds it twice (wrap-around over two chunks), and
in rows whose every key is excluded (queries masked by key_padding_mask, outputs the reference
calls meaningless), fp32 rounds `-1e5 + log 2` / `-1e9 + log W` and the weights no longer sum to one.
"""

from __future__ import annotations

import logging

import torch

from typing import Any

from ..lsh import LSHSettings, ProbsDropout, Rotations, n_buckets_of
from ..lsh import lsh_attention_from_buckets as reference_from_buckets
from .function import Geometry, LSHAttentionFunction, slot_tables
from .hashing import hash_buckets as _fast_hash_buckets
from .hashing import sorted_order
from .runtime import DTYPES, INTERPRET, launchable

log = logging.getLogger("reformer")

MAX_CHUNKS_BEFORE = 8  # the window is unrolled in the kernels; more chunks compile slowly
MAX_TILE = 128  # chunk_length and d_head: beyond this a tile's accumulators spill out of registers
# dedup: the kernels count N_ij <= rounds * (n_chunks_before + 1) in fp16, exact up to 2048
MAX_DUPLICATES = 2048

_reported: set[str] = set()


def unsupported_reason(
    qk: torch.Tensor,
    v: torch.Tensor,
    settings: LSHSettings | None = None,
    *,
    probs_dropout: ProbsDropout = None,
    rounds: int = 1,
    **keywords: Any,
) -> str | None:
    """Why the kernels cannot compute this call (None: they can); settings as for
    `lsh_attention_from_buckets`."""
    s = (settings or LSHSettings()).replace(**keywords)
    chunk_length, n_chunks_before, dedup = s.chunk_length, s.n_chunks_before, s.dedup
    if rounds > 1 and torch.are_deterministic_algorithms_enabled():
        return "deterministic algorithms requested and the kernels sum the rounds' gradients with atomics"
    if probs_dropout is not None:
        return "dropout on attention probabilities is not in the kernels"
    if dedup and rounds * (n_chunks_before + 1) > MAX_DUPLICATES:
        return f"dedup with rounds x (n_chunks_before + 1) = {rounds * (n_chunks_before + 1)} > {MAX_DUPLICATES}"
    if not 0 <= n_chunks_before <= MAX_CHUNKS_BEFORE:
        return f"n_chunks_before={n_chunks_before} > {MAX_CHUNKS_BEFORE}"
    if not 1 <= chunk_length <= MAX_TILE:
        return f"chunk_length={chunk_length} > {MAX_TILE}"
    if qk.shape[-1] > MAX_TILE:
        return f"d_head={qk.shape[-1]} > {MAX_TILE}"
    if qk.dtype not in DTYPES or v.dtype not in DTYPES:
        return f"dtype {qk.dtype}/{v.dtype} (the kernels take fp16, bf16, fp32)"
    if not (launchable(qk) and launchable(v)):
        return f"tensors on {qk.device} (the kernels need CUDA, or TRITON_INTERPRET=1 on CPU)"
    return None


def _fall_back(reason: str) -> None:
    if reason not in _reported:
        _reported.add(reason)
        log.warning("fast LSH attention: %s; using the reference implementation for this setting", reason)


# torch.compile runs these eagerly (a graph break around them) rather than tracing the kernel
# launches and the custom autograd Function.
@torch.compiler.disable
def lsh_attention_from_buckets(
    qk: torch.Tensor,
    v: torch.Tensor,
    buckets: torch.Tensor,
    settings: LSHSettings | None = None,
    *,
    n_buckets: int,
    key_padding_mask: torch.Tensor | None = None,
    probs_dropout: ProbsDropout = None,
    **keywords: Any,
) -> torch.Tensor:
    """`lsh.lsh_attention_from_buckets`, computed by the kernels (same arguments, same result)."""
    s = (settings or LSHSettings()).replace(**keywords)
    chunk_length, n_chunks_before = s.chunk_length, s.n_chunks_before
    if chunk_length < 1 or n_chunks_before < 0:
        raise ValueError(f"chunk_length={chunk_length} must be >= 1 and n_chunks_before={n_chunks_before} >= 0")
    reason = unsupported_reason(qk, v, s, probs_dropout=probs_dropout, rounds=buckets.shape[2])
    if reason is not None:
        _fall_back(reason)
        return reference_from_buckets(qk, v, buckets, s, n_buckets=n_buckets, key_padding_mask=key_padding_mask,
                                      probs_dropout=probs_dropout)
    b, h, length, d = qk.shape
    geo = Geometry(b, h, length, d, buckets.shape[2], s)
    perm, sorted_buckets, n_real = sorted_order(buckets, n_buckets, geo.padded, key_padding_mask)
    inverse, runs = slot_tables(perm, sorted_buckets, geo)
    dtype = torch.promote_types(qk.dtype, v.dtype)  # the kernels multiply in one dtype
    qk_, v_ = qk.to(dtype), v.to(dtype)
    qk_ = qk_ if qk_.stride(-1) == 1 else qk_.contiguous()
    v_ = v_ if v_.stride(-1) == 1 else v_.contiguous()
    with torch.autocast(qk.device.type, enabled=False):
        out = LSHAttentionFunction.apply(qk_, v_, perm, n_real, inverse, runs, geo)
    return out.to(v.dtype)


@torch.compiler.disable
def hash_buckets(qk: torch.Tensor, rotations: Rotations) -> torch.Tensor:
    """`lsh.hash_buckets` by a fused kernel (falls back to the reference where it cannot run)."""
    if qk.dtype not in DTYPES or not launchable(qk) or qk.shape[-1] > MAX_TILE:
        from ..lsh import hash_buckets as reference_hash

        return reference_hash(qk, rotations)
    return _fast_hash_buckets(qk, rotations)


def lsh_attention(
    qk: torch.Tensor,
    v: torch.Tensor,
    rotations: Rotations,
    settings: LSHSettings | None = None,
    *,
    key_padding_mask: torch.Tensor | None = None,
    probs_dropout: ProbsDropout = None,
    **keywords: Any,
) -> torch.Tensor:
    """`lsh.lsh_attention` = fast `hash_buckets` + fast `lsh_attention_from_buckets`."""
    return lsh_attention_from_buckets(
        qk, v, hash_buckets(qk, rotations), settings, n_buckets=n_buckets_of(rotations),
        key_padding_mask=key_padding_mask, probs_dropout=probs_dropout, **keywords,
    )


__all__ = [
    "INTERPRET",
    "MAX_CHUNKS_BEFORE",
    "MAX_DUPLICATES",
    "MAX_TILE",
    "hash_buckets",
    "lsh_attention",
    "lsh_attention_from_buckets",
    "unsupported_reason",
]

