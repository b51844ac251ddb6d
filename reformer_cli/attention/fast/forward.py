"""Forward kernels: one program per (chunk of a round, batch x head) attends over its window and
scatters o^(r) and z^(r) to original positions; a merge kernel combines the rounds (paper eq. 14).

The sorted order is never materialised as gathered copies of q, k, v. A program loads its chunk's
sorted positions from the permutation, gathers those rows of qk (queries; keys are the same rows,
normalised in registers) and v itself, computes the `[c, (n_chunks_before + 1) c]` logits in fp32
with the reference's masks (runtime.masked_logits: self, padding, chunks before the first, causal,
and under the paper's same-bucket rule slots of another round or outside the run of the query's
bucket) and, with the duplicate correction, `log N_ij` subtracted (runtime.log_duplicates: a count
over the rounds per tile, from each position's slot in every round), runs an online softmax over the
window's chunks, and writes its outputs straight to the original positions (no unsort pass). With one round the kernel writes the final output; with more,
`merge_rounds` reads every round's results once and writes o and the statistics of the union of
all rounds' slots, which the backward needs.

Softmax statistics are kept as a pair per row, the maximum logit m and log l (l = sum exp(s - m)),
never as one number z = m + log l: the self logit is -1e5 and excluded ones -1e9, where an fp32
z = m + log l loses log l to rounding (ulp 0.008 at 1e5, 64 at 1e9). With the pair, a query that
only sees itself in two rounds gets weights exactly 1/2 each, and the backward's recomputed
probabilities exp((s - M) - log Lambda) are exact.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .runtime import inverse_norm, masked_logits, mm, window_chunk


@triton.jit
def lsh_forward_kernel(
    QK, V, PERM, NREAL, INV, RUNS, O, MX, LG,
    s_qb, s_qh, s_ql, s_vb, s_vh, s_vl,
    s_or, s_ob, s_oh, s_ol, s_zr, s_zbh,
    H, L, N_CHUNKS, N_TOTAL, R, DR,
    C: tl.constexpr, BLOCK_C: tl.constexpr, D: tl.constexpr, BLOCK_D: tl.constexpr,
    NB: tl.constexpr, CAUSAL: tl.constexpr, WRAP: tl.constexpr,
    SAME_BUCKET_ONLY: tl.constexpr, DEDUP: tl.constexpr, REPS: tl.constexpr,
    PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    g = tl.program_id(0)  # global chunk: round * N_CHUNKS + chunk
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    rnd = g // N_CHUNKS
    n = g % N_CHUNKS
    lanes = tl.arange(0, BLOCK_C)
    dims = tl.arange(0, BLOCK_D)
    lane_ok = lanes < C
    dim_ok = dims < D
    n_real = tl.load(NREAL + b)
    perm = PERM + bh.to(tl.int64) * N_TOTAL * C
    slot_of = INV + bh.to(tl.int64) * N_TOTAL * C  # slot of each position per round (DEDUP)
    runs = RUNS + bh.to(tl.int64) * N_TOTAL * C * 2  # first and last slot of each slot's bucket (SAME_BUCKET_ONLY)
    qk = QK + b.to(tl.int64) * s_qb + h.to(tl.int64) * s_qh
    vv = V + b.to(tl.int64) * s_vb + h.to(tl.int64) * s_vh

    q_pos = tl.load(perm + g * C + lanes, mask=lane_ok, other=0)
    q_live = lane_ok & (q_pos < L)
    q = tl.load(qk + q_pos.to(tl.int64)[:, None] * s_ql + dims[None, :],
                mask=q_live[:, None] & dim_ok[None, :], other=0.0)

    m = tl.full([BLOCK_C], float("-inf"), tl.float32)
    l_sum = tl.zeros([BLOCK_C], tl.float32)
    acc = tl.zeros([BLOCK_C, BLOCK_D], tl.float32)
    for t in tl.static_range(NB + 1):
        kc, before_first = window_chunk(g, rnd, n, t, N_CHUNKS, N_TOTAL, WRAP)
        k_pos = tl.load(perm + kc * C + lanes, mask=lane_ok, other=0)
        k_rows = k_pos.to(tl.int64)[:, None]
        k_live = (lane_ok & (k_pos < L))[:, None] & dim_ok[None, :]
        xk = tl.load(qk + k_rows * s_ql + dims[None, :], mask=k_live, other=0.0)
        vk = tl.load(vv + k_rows * s_vl + dims[None, :], mask=k_live, other=0.0)
        s = mm(q, tl.trans(xk), PREC, UPCAST) * inverse_norm(xk)[None, :]
        k_slot = (kc % N_CHUNKS) * C + lanes
        s, _ = masked_logits(s, q_pos, k_pos, n * C + lanes, k_slot, n_real, before_first, lane_ok, rnd,
                             kc // N_CHUNKS, slot_of, runs, R, DR, N_CHUNKS, N_TOTAL,
                             C, NB, CAUSAL, WRAP, SAME_BUCKET_ONLY, DEDUP, REPS)
        m_new = tl.maximum(m, tl.max(s, 1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(s - m_new[:, None])
        l_sum = l_sum * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + mm(p.to(vk.dtype), vk, PREC, UPCAST)
        m = m_new
    out = acc / l_sum[:, None]
    o_ptr = O + rnd.to(tl.int64) * s_or + b.to(tl.int64) * s_ob + h.to(tl.int64) * s_oh
    tl.store(o_ptr + q_pos.to(tl.int64)[:, None] * s_ol + dims[None, :], out.to(O.dtype.element_ty),
             mask=q_live[:, None] & dim_ok[None, :])
    stats = rnd.to(tl.int64) * s_zr + bh.to(tl.int64) * s_zbh + q_pos
    tl.store(MX + stats, m, mask=q_live)
    tl.store(LG + stats, tl.log(l_sum), mask=q_live)


@triton.jit
def merge_rounds_kernel(
    OR, MR, LR, O, MX, LG,
    s_rr, s_rb, s_rh, s_rl, s_zr, s_zbh,
    s_ob, s_oh, s_ol,
    H, L,
    R: tl.constexpr, BLOCK_L: tl.constexpr, D: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """o = sum_r softmax_r(z^(r)) o^(r) (paper eq. 14) with z^(r) = m^(r) + log l^(r) kept as the
    pair (m^(r), log l^(r)); writes o and the union's statistics M = max_r m^(r),
    log Lambda = log sum_r l^(r) exp(m^(r) - M)."""
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    pos = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    dims = tl.arange(0, BLOCK_D)
    pos_ok = pos < L
    tile_ok = pos_ok[:, None] & (dims < D)[None, :]
    row = bh.to(tl.int64) * s_zbh + pos
    m_all = tl.full([BLOCK_L], float("-inf"), tl.float32)
    for r in tl.static_range(R):
        m_all = tl.maximum(m_all, tl.load(MR + row + r * s_zr, mask=pos_ok, other=0.0))
    total = tl.zeros([BLOCK_L], tl.float32)
    for r in tl.static_range(R):
        shift = tl.load(MR + row + r * s_zr, mask=pos_ok, other=0.0) - m_all
        total += tl.exp(shift + tl.load(LR + row + r * s_zr, mask=pos_ok, other=0.0))
    log_total = tl.log(total)
    acc = tl.zeros([BLOCK_L, BLOCK_D], tl.float32)
    o_rows = OR + b.to(tl.int64) * s_rb + h.to(tl.int64) * s_rh + pos.to(tl.int64)[:, None] * s_rl + dims[None, :]
    for r in tl.static_range(R):
        shift = tl.load(MR + row + r * s_zr, mask=pos_ok, other=0.0) - m_all
        w = tl.exp(shift + tl.load(LR + row + r * s_zr, mask=pos_ok, other=0.0) - log_total)
        acc += w[:, None] * tl.load(o_rows + r * s_rr, mask=tile_ok, other=0.0).to(tl.float32)
    out = O + b.to(tl.int64) * s_ob + h.to(tl.int64) * s_oh + pos.to(tl.int64)[:, None] * s_ol + dims[None, :]
    tl.store(out, acc.to(O.dtype.element_ty), mask=tile_ok)
    tl.store(MX + bh.to(tl.int64) * L + pos, m_all, mask=pos_ok)
    tl.store(LG + bh.to(tl.int64) * L + pos, log_total, mask=pos_ok)
