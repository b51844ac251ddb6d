"""Backward kernels (FlashAttention-2 style: probabilities recomputed from saved softmax
statistics, never stored).

The merged output of all rounds is one softmax over the union of every round's window slots:
o_i = sum_r sum_j exp(s_ij - Z_i) v_j, with Z_i = logsumexp_r z_i^(r) (eq. 14 unrolled). Its
gradient is therefore the plain softmax gradient over those slots: with P_ij = exp(s_ij - Z_i)
(computed as exp((s_ij - M_i) - log Lambda_i) from the forward's pair, see forward.py) and
Delta_i = dO_i . o_i,

    dV_j += P_ij dO_i,   dS_ij = P_ij (dO_i . v_j - Delta_i),   dQ_i += dS_ij k_j,   dK_j += dS_ij q_i,

summed over every slot of every round (the merge weights' gradient is inside Delta). dS is zero
where the reference *replaced* the logit (self: -1e5, excluded: -1e9, which under the paper's
same-bucket rule includes slots of another bucket or round). The duplicate correction's `log N_ij`
is a constant shift of s_ij (it depends on positions and buckets only), so it enters P_ij and
nothing else. Every tile's masks and `log N_ij` come from the same runtime.masked_logits as the
forward's, so the recomputed probabilities are the forward's. Keys are unit-norm copies of the
shared qk rows, k = x / |x|, so dx = dQ + (dK - k (k . dK)) / |x| (chained in registers).

One program per (chunk g of a round, batch x head) owns chunk g's positions, which are both the
queries of its window and the keys that the next `n_chunks_before` chunks look back at. It computes
dK, dV from the query chunks that see g (g+1, ..., then g itself), then dQ from g's window (g,
g-1, ...), the (g, g) tile shared by both, so each position's gradient of one round is complete in
one program: no atomics within a round. The phases keep at most two [chunk, d_head] accumulators
alive at a time (dK and dV, then dx), which keeps the kernel within the register file. Rounds are summed with fp32 atomic adds into [batch, heads, length, d]
buffers (each position is touched once per round, so contention is low); one round stores directly.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .runtime import inverse_norm, masked_logits, mm, seeing_chunk, window_chunk


@triton.jit
def output_dot_grad_kernel(
    O, DO, DELTA, s_ob, s_oh, s_ol, s_gb, s_gh, s_gl, H, L,
    BLOCK_L: tl.constexpr, D: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Delta_i = dO_i . o_i in fp32, [batch x heads, length]."""
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    pos = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    dims = tl.arange(0, BLOCK_D)
    ok = (pos < L)[:, None] & (dims < D)[None, :]
    rows = pos.to(tl.int64)[:, None]
    o = tl.load(O + b.to(tl.int64) * s_ob + h.to(tl.int64) * s_oh + rows * s_ol + dims[None, :], mask=ok, other=0.0)
    do = tl.load(DO + b.to(tl.int64) * s_gb + h.to(tl.int64) * s_gh + rows * s_gl + dims[None, :], mask=ok, other=0.0)
    tl.store(DELTA + bh.to(tl.int64) * L + pos, tl.sum(o.to(tl.float32) * do.to(tl.float32), 1), mask=pos < L)


@triton.jit
def lsh_backward_kernel(
    QK, V, DO, PERM, NREAL, INV, RUNS, MX, LG, DELTA, DQK, DV,
    s_qb, s_qh, s_ql, s_vb, s_vh, s_vl, s_gb, s_gh, s_gl,
    s_dqb, s_dqh, s_dql, s_dvb, s_dvh, s_dvl,
    H, L, N_CHUNKS, N_TOTAL, R, DR,
    C: tl.constexpr, BLOCK_C: tl.constexpr, D: tl.constexpr, BLOCK_D: tl.constexpr,
    NB: tl.constexpr, CAUSAL: tl.constexpr, WRAP: tl.constexpr,
    SAME_BUCKET_ONLY: tl.constexpr, DEDUP: tl.constexpr, REPS: tl.constexpr, ATOMIC: tl.constexpr,
    PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    g = tl.program_id(0)
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
    slot_of = INV + bh.to(tl.int64) * N_TOTAL * C
    runs = RUNS + bh.to(tl.int64) * N_TOTAL * C * 2
    qk = QK + b.to(tl.int64) * s_qb + h.to(tl.int64) * s_qh
    vv = V + b.to(tl.int64) * s_vb + h.to(tl.int64) * s_vh
    dout = DO + b.to(tl.int64) * s_gb + h.to(tl.int64) * s_gh
    mx = MX + bh.to(tl.int64) * L
    lg = LG + bh.to(tl.int64) * L
    dd = DELTA + bh.to(tl.int64) * L

    # chunk g: its positions as queries and as keys
    pos = tl.load(perm + g * C + lanes, mask=lane_ok, other=0)
    live = lane_ok & (pos < L)
    tile = live[:, None] & dim_ok[None, :]
    rows = pos.to(tl.int64)[:, None]
    x = tl.load(qk + rows * s_ql + dims[None, :], mask=tile, other=0.0)
    v = tl.load(vv + rows * s_vl + dims[None, :], mask=tile, other=0.0)
    do = tl.load(dout + rows * s_gl + dims[None, :], mask=tile, other=0.0)
    m = tl.load(mx + pos, mask=live, other=float("inf"))  # a missing query row gets no weight
    lse = tl.load(lg + pos, mask=live, other=0.0)
    delta = tl.load(dd + pos, mask=live, other=0.0)
    inv = inverse_norm(x)
    slot = n * C + lanes

    dk = tl.zeros([BLOCK_C, BLOCK_D], tl.float32)  # gradient w.r.t. the unit keys k = x / |x|
    dv = tl.zeros([BLOCK_C, BLOCK_D], tl.float32)

    # Phase 1: g as a key chunk of the query chunks g+1, ..., g+NB that look back at it: dK, dV.
    for t in tl.static_range(1, NB + 1):
        qc, before_first = seeing_chunk(g, rnd, n, t, N_CHUNKS, N_TOTAL, WRAP)
        q_pos = tl.load(perm + qc * C + lanes, mask=lane_ok, other=0)
        q_live = lane_ok & (q_pos < L)
        q_rows = q_pos.to(tl.int64)[:, None]
        q_tile = q_live[:, None] & dim_ok[None, :]
        xq = tl.load(qk + q_rows * s_ql + dims[None, :], mask=q_tile, other=0.0)
        doq = tl.load(dout + q_rows * s_gl + dims[None, :], mask=q_tile, other=0.0)
        mq = tl.load(mx + q_pos, mask=q_live, other=float("inf"))
        lse_q = tl.load(lg + q_pos, mask=q_live, other=0.0)
        delta_q = tl.load(dd + q_pos, mask=q_live, other=0.0)
        s = mm(xq, tl.trans(x), PREC, UPCAST) * inv[None, :]
        s, frozen = masked_logits(s, q_pos, pos, (qc % N_CHUNKS) * C + lanes, slot, n_real, before_first, lane_ok,
                                  qc // N_CHUNKS, rnd, slot_of, runs, R, DR, N_CHUNKS, N_TOTAL,
                                  C, NB, CAUSAL, WRAP, SAME_BUCKET_ONLY, DEDUP, REPS)
        p = tl.exp((s - mq[:, None]) - lse_q[:, None])
        dp = mm(doq, tl.trans(v), PREC, UPCAST)
        ds = tl.where(frozen, 0.0, p * (dp - delta_q[:, None]))
        dv += mm(tl.trans(p.to(doq.dtype)), doq, PREC, UPCAST)
        dk += mm(tl.trans(ds.to(xq.dtype)), xq, PREC, UPCAST)

    # The (g, g) tile: g's queries against its own keys feed dV, dK and dQ.
    s = mm(x, tl.trans(x), PREC, UPCAST) * inv[None, :]
    s, frozen = masked_logits(s, pos, pos, slot, slot, n_real, n < 0, lane_ok, rnd, rnd,
                              slot_of, runs, R, DR, N_CHUNKS, N_TOTAL,
                              C, NB, CAUSAL, WRAP, SAME_BUCKET_ONLY, DEDUP, REPS)
    p = tl.exp((s - m[:, None]) - lse[:, None])
    dp = mm(do, tl.trans(v), PREC, UPCAST)
    ds = tl.where(frozen, 0.0, p * (dp - delta[:, None]))
    dv += mm(tl.trans(p.to(do.dtype)), do, PREC, UPCAST)
    dk += mm(tl.trans(ds.to(x.dtype)), x, PREC, UPCAST)
    dv_ptr = DV + b.to(tl.int64) * s_dvb + h.to(tl.int64) * s_dvh + rows * s_dvl + dims[None, :]
    if ATOMIC:
        tl.atomic_add(dv_ptr, dv, mask=tile, sem="relaxed")
    else:
        tl.store(dv_ptr, dv.to(DV.dtype.element_ty), mask=tile)
    # dK is complete: through the key normalisation, dx = inv * (dk - x * inv^2 * (x . dk)); dQ adds on.
    xf = x.to(tl.float32)
    dx = inv[:, None] * (dk - xf * (inv * inv * tl.sum(xf * dk, 1))[:, None])
    dx += mm((ds * inv[None, :]).to(x.dtype), x, PREC, UPCAST)

    # Phase 2: g as the query chunk of its window g-1, ..., g-NB: the rest of dQ.
    for t in tl.static_range(1, NB + 1):
        kc, before_first = window_chunk(g, rnd, n, t, N_CHUNKS, N_TOTAL, WRAP)
        k_pos = tl.load(perm + kc * C + lanes, mask=lane_ok, other=0)
        k_rows = k_pos.to(tl.int64)[:, None]
        k_tile = (lane_ok & (k_pos < L))[:, None] & dim_ok[None, :]
        xk = tl.load(qk + k_rows * s_ql + dims[None, :], mask=k_tile, other=0.0)
        vk = tl.load(vv + k_rows * s_vl + dims[None, :], mask=k_tile, other=0.0)
        inv_k = inverse_norm(xk)
        k_slot = (kc % N_CHUNKS) * C + lanes
        s = mm(x, tl.trans(xk), PREC, UPCAST) * inv_k[None, :]
        s, frozen = masked_logits(s, pos, k_pos, slot, k_slot, n_real, before_first, lane_ok, rnd, kc // N_CHUNKS,
                                  slot_of, runs, R, DR, N_CHUNKS, N_TOTAL,
                                  C, NB, CAUSAL, WRAP, SAME_BUCKET_ONLY, DEDUP, REPS)
        p = tl.exp((s - m[:, None]) - lse[:, None])
        dp = mm(do, tl.trans(vk), PREC, UPCAST)
        ds = tl.where(frozen, 0.0, p * (dp - delta[:, None]))
        dx += mm((ds * inv_k[None, :]).to(xk.dtype), xk, PREC, UPCAST)

    dqk_ptr = DQK + b.to(tl.int64) * s_dqb + h.to(tl.int64) * s_dqh + rows * s_dql + dims[None, :]
    if ATOMIC:
        tl.atomic_add(dqk_ptr, dx, mask=tile, sem="relaxed")
    else:
        tl.store(dqk_ptr, dx.to(DQK.dtype.element_ty), mask=tile)
