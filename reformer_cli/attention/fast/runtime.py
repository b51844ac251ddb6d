"""What every kernel module shares: the interpreter switch, block sizes, the mask constants and the
reference's masks on a tile (masked_logits, with the same-bucket rule and the duplicate counts).

`TRITON_INTERPRET=1` must be set before this package is imported (`@triton.jit` reads it when a
kernel is *defined*); then the kernels run on CPU tensors through Triton's interpreter, which is how
CI checks them without a GPU (tests/conftest.py sets it on machines without CUDA).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from ..common import KEY_NORM_EPS, MASK_VALUE, SELF_MASK_VALUE

# Kernels were defined for Triton's CPU interpreter (read once, at import, like @triton.jit does).
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# The same constants as the reference (attention/common.py), usable inside kernels.
SELF_LOGIT = tl.constexpr(SELF_MASK_VALUE)
EXCLUDED_LOGIT = tl.constexpr(MASK_VALUE)
NORM_EPS = tl.constexpr(KEY_NORM_EPS)

# Input dtypes the kernels take; logits, softmax statistics and accumulators are always fp32.
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def block(n: int) -> int:
    """A tile size covering n: a power of two, at least 16 (tl.dot's smallest operand dimension)."""
    return max(16, triton.next_power_of_2(n))


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs: 'tf32x3' (each product from three tf32 products on tensor cores, about fp32
    accuracy; plain tf32 would miss the 1e-4 bound, and 'ieee' FMA dots spill ~14 KB per thread and
    compile for tens of seconds on sm_90). bf16 / fp16 products are exact in fp32 anyway. The
    interpreter multiplies in fp32 whatever this says."""
    return "tf32x3" if dtype == torch.float32 else "tf32"


def launchable(t: torch.Tensor) -> bool:
    """Whether the kernels can run on this tensor's device (CUDA, or CPU under the interpreter)."""
    return t.device.type == "cuda" or (INTERPRET and t.device.type == "cpu")


@triton.jit
def mm(a, b, PREC: tl.constexpr, UPCAST: tl.constexpr):
    """a @ b with fp32 accumulation. UPCAST (interpreter only): multiply in fp32, because the
    interpreter multiplies bf16 tiles as raw integers; bf16 x bf16 products are exact in fp32, so the
    result is what a tensor core computes."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def inverse_norm(x):
    """1 / ||x|| per row, in fp32 (common.unit_norm_keys: x * rsqrt(sum x^2 + eps))."""
    xf = x.to(tl.float32)
    return 1.0 / tl.sqrt(tl.sum(xf * xf, 1) + NORM_EPS)


@triton.jit
def window_chunk(g, rnd, n, t: tl.constexpr, N_CHUNKS, N_TOTAL, WRAP: tl.constexpr):
    """The t-th chunk before global chunk g (= rnd * N_CHUNKS + n) in g's window, and whether that
    window slot lies before the first chunk (its keys are then excluded, as the reference's rolled,
    `valid`-masked slots). Without wrap the reference rolls within the round; with wrap over all
    rounds' chunks."""
    if WRAP:
        kc = ((g - t) % N_TOTAL + N_TOTAL) % N_TOTAL
        before_first = n < 0
    else:
        kc = rnd * N_CHUNKS + ((n - t) % N_CHUNKS + N_CHUNKS) % N_CHUNKS
        before_first = n < t
    return kc, before_first


@triton.jit
def seeing_chunk(g, rnd, n, t: tl.constexpr, N_CHUNKS, N_TOTAL, WRAP: tl.constexpr):
    """The global chunk whose window holds chunk g as its t-th chunk back (the inverse of
    window_chunk), and whether that slot lies before the first chunk."""
    if WRAP:
        qc = (g + t) % N_TOTAL
        before_first = n < 0
    else:
        qc = rnd * N_CHUNKS + (n + t) % N_CHUNKS
        before_first = n + t >= N_CHUNKS
    return qc, before_first


@triton.jit
def window_hits(d, NB: tl.constexpr, N_TOTAL, REPS: tl.constexpr):
    """With wrap-around: how many of a window's NB + 1 chunks (t = 0..NB back from the query's
    chunk, modulo the N_TOTAL chunks of all rounds) are the key's chunk, given d = query chunk - key
    chunk, d > -N_TOTAL (lsh.duplicate_counts): every t = d mod N_TOTAL, at most REPS =
    NB // N_TOTAL + 1 of them (a window longer than all rounds' chunks holds a key again)."""
    d = tl.where(d < 0, d + N_TOTAL, d)
    hits = (d <= NB).to(tl.float16)
    for k in tl.static_range(1, REPS):
        hits += (d + k * N_TOTAL <= NB).to(tl.float16)
    return hits


@triton.jit
def log_duplicates(s, q_pos, k_pos, lane_ok, INV, RUNS, R, DR, N_CHUNKS, N_TOTAL, LP, C: tl.constexpr,
                   NB: tl.constexpr, WRAP: tl.constexpr, SAME_BUCKET_ONLY: tl.constexpr,
                   REPS: tl.constexpr):
    """log N_ij of the paper's Appendix A (lsh.duplicate_counts) for the [queries, keys] tile s: N_ij =
    how many attended slots of query i, over all R rounds, hold key j. INV: the round-local slot of
    every position in every round; RUNS: the first and last slot of the bucket of every slot.

    Without wrap, query i's attended slots in round r are one interval: the slots of its window
    (chunks c - NB .. c, c its chunk), under the same-bucket rule (SAME_BUCKET_ONLY: the setting
    attend_across_buckets=False) intersected with its bucket's run, so key j counts when its slot
    of round r lies in it. With wrap, by chunk distance modulo all rounds' chunks (window_hits),
    under SAME_BUCKET_ONLY within the own round only and inside the bucket's run; across buckets
    key j's slots of earlier rounds r - back count too (only back < DR can be within NB chunks).
    Per round one load per key, two per query; the count (small integers, exact in fp16) is seeded
    from s so that it lives in s's register layout."""
    count = (s * 0.0).to(tl.float16)
    for r in range(R):
        s_q = tl.load(INV + r * LP + q_pos, mask=lane_ok, other=0)
        if SAME_BUCKET_ONLY:
            run = RUNS + 2 * (r * LP + s_q)
            first = tl.load(run, mask=lane_ok, other=0)
            last = tl.load(run + 1, mask=lane_ok, other=0)
        if not WRAP:
            lo = (s_q // C - NB) * C
            hi = (s_q // C) * C + (C - 1)
            if SAME_BUCKET_ONLY:
                lo = tl.maximum(lo, first)
                hi = tl.minimum(hi, last)
            s_k = tl.load(INV + r * LP + k_pos, mask=lane_ok, other=0)[None, :]
            count += ((s_k >= lo[:, None]) & (s_k <= hi[:, None])).to(tl.float16)
        elif SAME_BUCKET_ONLY:
            s_k = tl.load(INV + r * LP + k_pos, mask=lane_ok, other=0)[None, :]
            hits = window_hits((s_q // C)[:, None] - s_k // C, NB, N_TOTAL, REPS)
            count += tl.where((s_k >= first[:, None]) & (s_k <= last[:, None]), hits, 0.0)
        else:
            for back in range(DR):
                s_k = tl.load(INV + ((r + R - back) % R) * LP + k_pos, mask=lane_ok, other=0)
                count += window_hits((s_q // C)[:, None] - (s_k // C)[None, :] + back * N_CHUNKS, NB, N_TOTAL, REPS)
    return tl.log(tl.maximum(count.to(tl.float32), 1.0))


@triton.jit
def masked_logits(s, q_pos, k_pos, q_slot, k_slot, n_real, before_first, k_lane, q_round, k_round,
                  INV, RUNS, R, DR, N_CHUNKS, N_TOTAL, C: tl.constexpr, NB: tl.constexpr,
                  CAUSAL: tl.constexpr, WRAP: tl.constexpr, SAME_BUCKET_ONLY: tl.constexpr,
                  DEDUP: tl.constexpr, REPS: tl.constexpr):
    """The reference's masks on a [queries, keys] tile of q . k / |k| (lsh.lsh_logits) whose queries
    are the slots q_slot of round q_round and whose keys are the slots k_slot of round k_round
    (round-local slots): the self logit replaced by -1e5; `log N_ij` subtracted (DEDUP,
    log_duplicates); excluded keys replaced by -1e9: padding / masked keys (they sort after every real
    key, so their slot is >= n_real), slots before the first chunk, later keys when causal, and under
    the same-bucket rule (SAME_BUCKET_ONLY) slots of another round or outside the run of slots of the
    query's bucket (RUNS: first and last slot of the bucket of every slot; slots are sorted by bucket, so
    that run is the bucket); lanes past the chunk's end do not exist (-inf, no weight at all).

    Returns (logits, frozen): frozen marks logits that were replaced (no gradient flows to q, k)."""
    LP = N_CHUNKS * C
    is_self = q_pos[:, None] == k_pos[None, :]
    excluded = ((k_slot >= n_real) | before_first)[None, :]
    if CAUSAL:
        excluded = excluded | (k_pos[None, :] > q_pos[:, None])
    if SAME_BUCKET_ONLY:
        run = RUNS + 2 * (q_round * LP + q_slot)
        first = tl.load(run, mask=k_lane, other=0)
        last = tl.load(run + 1, mask=k_lane, other=0)
        excluded = excluded | (k_slot[None, :] < first[:, None]) | (k_slot[None, :] > last[:, None]) | \
            (q_round != k_round)
    s = tl.where(is_self, SELF_LOGIT, s)
    if DEDUP:
        s = s - log_duplicates(s, q_pos, k_pos, k_lane, INV, RUNS, R, DR, N_CHUNKS, N_TOTAL, LP, C, NB, WRAP,
                               SAME_BUCKET_ONLY, REPS)
    s = tl.where(excluded, EXCLUDED_LOGIT, s)
    s = tl.where(k_lane[None, :], s, float("-inf"))
    frozen = is_self | excluded | (s == float("-inf"))
    return s, frozen
