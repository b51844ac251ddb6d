"""LSH attention, the reference (docs/lsh-attention.md; paper section 2 and Appendix A).

This module defines what LSH attention computes; every faster implementation (the GPU kernels of
`reformer_cli.attention.fast`) implements `lsh_attention_from_buckets` with the same signature and
is tested against it. Each step of the paper is one function below, named after it:

    hash_buckets  ->  pad_to_chunks  ->  sort_by_bucket (SortedOrder.sort)  ->  look_back
    ->  window_masks (wrapped_masks with wrap-around; they hold the same-bucket rule and N_ij)
    ->  lsh_logits  ->  attend_per_round  ->  SortedOrder.unsort  ->  merge_rounds

Kept cheap on the CPU without changing the function: rows are gathered with one index per call
and gathered back in the backward (no scatter-add); without wrap-around the masks and the counts
N_ij come from one packed (bucket, chunk) code per slot, never from per-pair positions; the masks
are written once, in place, on the logits; the softmax and its log-sum-exp share one exp.

`lsh_attention(qk, v, rotations, ...)` = `hash_buckets` + `lsh_attention_from_buckets`. The split
exists because (a) a fast implementation replaces only the second part, and (b) a reversible
layer's backward recomputation replays the forward's *buckets* (not its rotations: a recomputed
input can differ by rounding and flip a bucket). Both take the settings below as keywords, or as
one `LSHSettings` (primitives/attention_settings.py: the one place their defaults are written).

Exact semantics (shapes `[batch, heads, length, d_head]`; all arithmetic in at least fp32, autocast
off, like `shared_qk_full_attention`):

1. Hash. `rotations` is `[heads, d_head, n_rounds, f/2]` (shared by every example of the batch),
   or `[batch, heads, d_head, n_rounds, f/2]` (one per example, as the authors' trax draws them),
   or a list of such tensors, one per factor f_1, f_2, ... of factorised buckets (trax). For one
   factor with rotation R (of the example, head and round):
   `b = argmax([x R ; -x R])` (first index on ties); factorised: `b = b_1 + f_1 b_2 + f_1 f_2 b_3 + ...`,
   `n_buckets = f_1 f_2 ...`. No gradient flows through hashing.
2. Pad. Let `c = chunk_length`, `L' = ceil(L / c) * c`. Positions `L..L'-1` are appended (zeros),
   and they and every position whose `key_padding_mask` is False get bucket `n_buckets`, an extra
   bucket after all real ones (as trax and HF do), in every round. Their keys are excluded (4.) and
   their outputs are dropped (positions >= L) or meaningless (masked positions).
3. Sort. Per round, positions are sorted by `bucket * L' + position` (a stable sort by bucket, then
   position). Sorted slot `s` of round r lies in chunk `s // c` of that round.
4. Look back. A query in chunk n of round r attends to the key slots of chunks n, n-1, ...,
   n-`n_chunks_before` (its window, `(n_chunks_before + 1) * c` slots).
   * `wrap_lookback=False` (the paper's eq. 5): only chunks of the same round; chunks before the
     first do not exist (their slots are excluded).
   * `wrap_lookback=True` (trax and HF): the rounds are concatenated into one array of
     `R * L' / c` chunks, and the look-back rolls over that whole array: round r's first chunk
     sees round r-1's last chunk, and round 0's first chunk sees the last round's last chunk.
   With wrap-around a window can hold the same key more than once (when `n_chunks_before + 1`
   exceeds the number of chunks of all rounds). The attended set of query i in round r,
   P_i^(r), is therefore a *multiset*: a key held by c_ij^(r) slots counts c_ij^(r) times in the
   softmax, exactly as trax and HF compute it.
   * `attend_across_buckets=False` (the paper's eq. 3-4 and 16; the default): inside its window,
     query i attends only the slots of its own round that hold a key of its own bucket,
     `h_r(j) == h_r(i)`. With wrap-around, slots of another round's chunk are never attended
     (paper-era trax compares bucket ids that carry the round, so they never match). The self
     key is always in the query's own bucket and chunk, so no query is left without a key.
   * `attend_across_buckets=True` (trax v2 and HF): every slot of the window, whatever its bucket.
5. Logits. `s_ij = q_i . k_j / ||k_j||` (unit-norm keys, unscaled queries). The self logit
   (j == i, original positions) is *replaced* by -1e5. Excluded keys get exactly -1e9 (replaced):
   slots before the first chunk (no wrap), keys later than the query (causal, original
   positions), padding keys (2.).
   Under the same-bucket rule, keys of another bucket (or, with wrap, another round) are excluded.
   `dedup=True` (the paper's Appendix A, eq. 13/16; the default): from every non-excluded logit,
   self included, subtract `log N_ij`, where `N_ij = sum_r c_ij^(r)` counts how many *attended*
   slots of query i, over all rounds, hold key j (the window's slots across buckets, the
   same-bucket slots under the paper's rule). Then the merged output (6.) equals exactly the softmax over the union
   `P_i = U_r P_i^(r)` with each key counted once (paper eq. 11). (The paper's mask leaves the
   self logit at -1e5 without the `log N_ii`; the two differ only in a row whose sole target is the
   query itself, where both give the same output.)
6. Per round, a softmax over the window gives `o_i^(r)` and its log-sum-exp `z_i^(r)`; the
   optional `probs_dropout` applies to these probabilities. Rounds combine as
   `o_i = sum_r softmax_r(z_i^(r)) o_i^(r)` (paper eq. 14); gradients flow through the z's as well.

With one chunk covering the sequence and attention across buckets (or a single bucket) every
round attends to all keys, so the result equals `shared_qk_full_attention` (docs/lsh-attention.md, "Equivalence with full attention").
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import torch

from ..primitives.attention_settings import LSHSettings
from .common import MASK_VALUE, SELF_MASK_VALUE, ProbsDropout, unit_norm_keys

Rotations = Union[torch.Tensor, Sequence[torch.Tensor]]


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def rotation_factors(rotations: Rotations) -> list[torch.Tensor]:
    """The rotation tensors, one per bucket factor."""
    return [rotations] if isinstance(rotations, torch.Tensor) else list(rotations)


def n_buckets_of(rotations: Rotations) -> int:
    """The bucket count the rotations hash into: prod_i f_i with f_i = 2 * rotations[i].shape[-1]."""
    return math.prod(2 * r.shape[-1] for r in rotation_factors(rotations))


def rotations_shape(n_heads: int, d_head: int, n_rounds: int, factor: int, batch: int | None = None) -> tuple[int, ...]:
    """Shape of the rotations of one bucket factor (docs/lsh-attention.md, "Hash"): shared by the
    batch, or with `batch`, one set per example."""
    shared = (n_heads, d_head, n_rounds, factor // 2)
    return shared if batch is None else (batch, *shared)


# ---------------------------------------------------------------------------------- 1. hash


@torch.no_grad()
def hash_buckets(qk: torch.Tensor, rotations: Rotations) -> torch.Tensor:
    """Angular LSH: `argmax([x R ; -x R])` per round (paper section 2), factorised as in trax.

    qk `[batch, heads, length, d_head]` -> buckets `[batch, heads, n_rounds, length]` (int64,
    in `[0, n_buckets_of(rotations))`). Each rotation tensor is shared by the batch
    `[heads, d_head, n_rounds, f/2]` or has one set per example `[batch, heads, d_head, n_rounds, f/2]`."""
    dtype = _compute_dtype(qk)
    x = qk.detach().to(dtype)
    buckets, stride = None, 1
    with torch.autocast(qk.device.type, enabled=False):
        for rot in rotation_factors(rotations):
            rot_axes = "bhdrk" if rot.dim() == 5 else "hdrk"  # per example, or shared by the batch
            rotated = torch.einsum(f"bhld,{rot_axes}->bhrlk", x, rot.to(device=qk.device, dtype=dtype))
            b = angular_bucket(rotated)
            buckets = b if buckets is None else buckets + stride * b
            stride *= 2 * rot.shape[-1]
    return buckets


def angular_bucket(rotated: torch.Tensor) -> torch.Tensor:
    """`argmax([a ; -a])` over the last dim (first index on ties) without building `[a ; -a]`.

    Proof. Let a have m entries. max([a ; -a]) = max(max a, -min a). If max a >= -min a, the
    first half holds a maximum, and the first index of the maximum is the first index of max a
    (`argmax a`). Otherwise every maximum lies in the second half, where -a is largest first at the
    first index of min a: the answer is m + argmin a. torch.max and torch.min return the first
    index of a tie. (The shorter "argmax |a|, then its sign" is not the same on a tie |a_k| = |a_l|,
    k < l, with a_k < 0 < a_l: [a ; -a] picks l, argmax |a| picks m + k.)"""
    top, top_at = rotated.max(dim=-1)
    low, low_at = rotated.min(dim=-1)
    return torch.where(top >= -low, top_at, low_at + rotated.shape[-1])


# ---------------------------------------------------------------------------------- 2. pad


def pad_to_chunks(
    qk: torch.Tensor,
    v: torch.Tensor,
    buckets: torch.Tensor,
    chunk_length: int,
    n_buckets: int,
    key_padding_mask: torch.Tensor | None,
):
    """Pad the length to a multiple of the chunk length; padding goes to the extra bucket.

    Returns (qk, v, buckets, real) with `real` a bool `[batch, L']` marking real (attendable) keys."""
    b, _, length, _ = qk.shape
    padded = -(-length // chunk_length) * chunk_length
    pad = padded - length
    if pad:
        qk = torch.nn.functional.pad(qk, (0, 0, 0, pad))
        v = torch.nn.functional.pad(v, (0, 0, 0, pad))
        buckets = torch.nn.functional.pad(buckets, (0, pad), value=n_buckets)
    real = torch.arange(padded, device=qk.device) < length
    real = real.expand(b, padded)
    if key_padding_mask is not None:
        real = real & torch.nn.functional.pad(key_padding_mask.to(torch.bool), (0, pad), value=False)
    buckets = torch.where(real[:, None, None, :], buckets, torch.full_like(buckets, n_buckets))
    return qk, v, buckets, real


# ---------------------------------------------------------------------------------- 3. sort


@torch.no_grad()
def sort_by_bucket(buckets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable sort of each round by bucket, then position: key `bucket * L + position` (a stable
    sort by bucket alone gives the same permutation, since positions are already in order).

    buckets `[batch, heads, rounds, L]` -> (perm, inverse): `perm[..., s]` is the original position
    in sorted slot s; `inverse[..., p]` is the sorted slot of position p."""
    length = buckets.shape[-1]
    positions = torch.arange(length, device=buckets.device)
    perm = torch.argsort(buckets, dim=-1, stable=True)
    inverse = torch.empty_like(perm).scatter_(-1, perm, positions.expand_as(perm))
    return perm, inverse


class _SelectRows(torch.autograd.Function):
    """`x.index_select(dim, index)` whose backward is a gather too, `grad.index_select(dim, back)`,
    instead of a scatter-add into zeros. `fold = (groups, copies, rows)`: x has `groups * rows`
    entries along dim, each selected `copies` times; back lists for every group, copy and entry of
    x (in that order) the selected entry holding it, and the copies' gradients are summed."""

    @staticmethod
    def forward(ctx, x, dim, index, back, fold):
        ctx.save_for_backward(back)
        ctx.dim, ctx.fold = dim, fold
        return x.index_select(dim, index)

    @staticmethod
    def backward(ctx, grad):
        (back,) = ctx.saved_tensors
        dim, (groups, copies, rows) = ctx.dim, ctx.fold
        grad_x = grad.index_select(dim, back)
        if copies > 1:  # a few streaming adds (a reduction over a short middle dim is slow on the CPU)
            first, *rest = grad_x.unflatten(dim, (groups, copies, rows)).unbind(dim + 1)
            grad_x = first + rest[0]
            for part in rest[1:]:
                grad_x.add_(part)
            grad_x = grad_x.flatten(dim, dim + 1)
        return grad_x, None, None, None, None


class SortedOrder:
    """Every round's sorted order as row indices, computed once per call: `sort` gathers any
    `[b, h, L', D]` tensor into `[b, h, R, L', D]` (slot s of round r holds position perm[r, s]),
    `unsort` takes `[b, h, R, L', D]` back to original positions (position p of round r is slot
    inverse[r, p]). Both are one row gather forward and one backward, for all rounds together."""

    def __init__(self, perm: torch.Tensor, inverse: torch.Tensor):
        b, h, self.rounds, self.padded = perm.shape
        self.bh = b * h
        heads = torch.arange(self.bh, device=perm.device).view(b, h, 1, 1) * self.padded
        rounds = torch.arange(self.bh * self.rounds, device=perm.device).view(b, h, self.rounds, 1) * self.padded
        self.sort_index, self.sort_back = (perm + heads).reshape(-1), (inverse + rounds).reshape(-1)
        self.unsort_index, self.unsort_back = self.sort_back, (perm + rounds).reshape(-1)
        self.shape = (b, h, self.rounds, self.padded)

    def sort(self, x: torch.Tensor) -> torch.Tensor:
        fold = (self.bh, self.rounds, self.padded)
        rows = _SelectRows.apply(x.reshape(self.bh * self.padded, -1), 0, self.sort_index, self.sort_back, fold)
        return rows.view(*self.shape, -1)

    def unsort(self, x: torch.Tensor) -> torch.Tensor:
        fold = (1, 1, self.unsort_index.shape[0])
        rows = _SelectRows.apply(x.reshape(fold[2], -1), 0, self.unsort_index, self.unsort_back, fold)
        return rows.view(*self.shape, -1)


def gather_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x `[batch, heads, L, ...]` at positions `index [batch, heads, *idx]` -> `[batch, heads, *idx, ...]`."""
    b, h = index.shape[:2]
    flat = index.reshape(b, h, -1)
    tail = x.shape[3:]
    flat = flat.view(b, h, -1, *([1] * len(tail))).expand(b, h, flat.shape[-1], *tail)
    return torch.gather(x, 2, flat).view(*index.shape, *tail)


# ---------------------------------------------------------------------------------- 4. look back


def look_back(chunks: torch.Tensor, n_chunks_before: int, wrap: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The window of each chunk: chunks n - n_chunks_before, ..., n - 1, n, concatenated.

    chunks `[batch, heads, rounds, n_chunks, c, *tail]` (slots, or sorted original positions) ->
    (window `[batch, heads, rounds, n_chunks, (n_chunks_before + 1) * c, *tail]`, valid) where
    `valid` `[n_chunks, window]` marks slots of existing chunks (None with wrap: every slot
    exists). Chunk n's block for t chunks back is chunk (n - t) mod M of the array the look-back
    rolls over (one round, or with wrap all rounds' M chunks). With wrap one index_select builds the
    window; without wrap, slice copies of the chunks shifted t later (zeros in front: slots that are
    not valid) do, several times faster on the CPU than a row gather (`_ShiftedBlocks`)."""
    b, h, rounds, n_chunks, c = chunks.shape[:5]
    tail = chunks.shape[5:]
    if not wrap:
        window = _ShiftedBlocks.apply(chunks, n_chunks_before)
        shifts = torch.arange(n_chunks_before, -1, -1, device=chunks.device)  # block order: farthest first
        valid = torch.arange(n_chunks, device=chunks.device)[:, None] - shifts >= 0
        return window.view(b, h, rounds, n_chunks, (n_chunks_before + 1) * c, *tail), valid.repeat_interleave(c, dim=1)
    m = rounds * n_chunks  # the chunks of the array the look-back rolls over: all rounds'
    arrays = b * h
    n = torch.arange(m, device=chunks.device)[:, None]
    shifts = torch.arange(n_chunks_before, -1, -1, device=chunks.device)  # block order: farthest first
    blocks = n_chunks_before + 1
    first = torch.arange(arrays, device=chunks.device)[:, None] * m
    index = (first + (n - shifts).remainder(m).reshape(-1)).reshape(-1)
    # chunk n sits t chunks back in chunk n + t's window, at block nb - t
    back = (n + shifts.flip(0)).remainder(m) * blocks + shifts
    back = (first * blocks + back.reshape(-1)).reshape(-1)
    window = _SelectRows.apply(chunks.reshape(arrays * m, -1), 0, index, back, (arrays * m, blocks, 1))
    return window.view(b, h, rounds, n_chunks, blocks * c, *tail), None


class _ShiftedBlocks(torch.autograd.Function):
    """The look-back window without wrap: x `[b, h, R, n, *chunk]` -> `[b, h, R, n, nb + 1, *chunk]`
    whose block nb - t of chunk n is chunk n - t (zeros for n < t), written by slice copies.
    Backward: chunk n's gradient is its own block's plus block nb - t of chunk n + t for every t,
    summed in place in that order (no zero-filled buffers per block; the gradient is read in any
    layout, as the logits' matmul leaves the keys' transposed)."""

    @staticmethod
    def forward(ctx, x, n_chunks_before):
        n_chunks = x.shape[3]
        ctx.n_chunks_before = n_chunks_before
        window = x.new_empty(*x.shape[:4], n_chunks_before + 1, *x.shape[4:])
        for t in range(n_chunks_before + 1):
            block = window[:, :, :, :, n_chunks_before - t]
            block[:, :, :, t:] = x[:, :, :, :max(n_chunks - t, 0)]
            block[:, :, :, :t] = 0
        return window

    @staticmethod
    def backward(ctx, grad):
        nb, n_chunks = ctx.n_chunks_before, grad.shape[3]
        grad_x = grad[:, :, :, :, nb].clone(memory_format=torch.contiguous_format)
        for t in range(1, min(nb, n_chunks - 1) + 1):
            grad_x[:, :, :, :n_chunks - t] += grad[:, :, :, t:, nb - t]
        return grad_x, None


@torch.no_grad()
def duplicate_counts(
    queries: torch.Tensor,
    keys: torch.Tensor,
    inverse: torch.Tensor,
    chunk_length: int,
    n_chunks_before: int,
    wrap: bool,
    buckets: torch.Tensor | None = None,
) -> torch.Tensor:
    """N_ij of the paper's Appendix A: how many attended slots of query i, over all rounds, hold key j.

    queries `[b, h, R, n, c]` and keys `[b, h, R, n, W]` (original positions of a chunk's queries
    and of its window's keys), inverse `[b, h, R, L']` (sorted slot of each position per round)
    -> counts `[b, h, R, n, c, W]` (>= 1 on every attended slot). `buckets` `[b, h, R, L']`
    (padded): the same-bucket rule, counting in round r only slots of round r whose key shares
    query i's bucket; None: every window slot counts."""
    rounds = inverse.shape[2]
    n_chunks = inverse.shape[-1] // chunk_length
    chunk_of = inverse // chunk_length  # [b, h, R, L']: chunk of each position, per round
    counts = torch.zeros(*queries.shape, keys.shape[-1], dtype=torch.int64, device=queries.device)
    for r in range(rounds):
        chunk_q = gather_positions(chunk_of[:, :, r], queries)[..., :, None]
        same = True
        if buckets is not None:
            same = gather_positions(buckets[:, :, r], queries)[..., :, None] == \
                gather_positions(buckets[:, :, r], keys)[..., None, :]
        if not wrap:
            chunk_k = gather_positions(chunk_of[:, :, r], keys)[..., None, :]
            d = chunk_q - chunk_k
            counts += (d >= 0) & (d <= n_chunks_before) & same
            continue
        # With wrap, query i's window in round r is the global chunks (g - t) mod M, t = 0..nb,
        # g = r * n_chunks + its chunk; key j occupies global chunk r'' * n_chunks + its chunk in
        # each round r''. Count the t that hit one of them (under the same-bucket rule only
        # r'' = r can be attended).
        total = rounds * n_chunks
        global_q = chunk_q + r * n_chunks
        for r2 in range(rounds) if buckets is None else [r]:
            global_k = gather_positions(chunk_of[:, :, r2], keys)[..., None, :] + r2 * n_chunks
            d = (global_q - global_k) % total
            counts += torch.where((d <= n_chunks_before) & same, (n_chunks_before - d) // total + 1, 0)
    return counts


def bucket_ids_with_round(sorted_buckets: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """`round * (n_buckets + 1) + bucket` for sorted buckets `[b, h, R, L']`: two slots carry the
    same id exactly when they hold keys of the same bucket of the same round (the same-bucket rule;
    paper-era trax offsets its bucket ids by round in the same way)."""
    rounds = sorted_buckets.shape[2]
    offsets = torch.arange(rounds, device=sorted_buckets.device)[:, None] * (n_buckets + 1)
    return sorted_buckets + offsets


def in_window(query_codes: torch.Tensor, key_codes: torch.Tensor, n_chunks_before: int) -> torch.Tensor:
    """`0 <= code_i - code_j <= n_chunks_before` for every pair: query codes `[..., c]` and key codes
    `[..., W]` (twice the packed code minus n_chunks_before, and twice the packed code:
    `|2 d - nb| <= nb` is the same test in three passes) -> bool `[..., c, W]`."""
    return (query_codes[..., :, None] - key_codes[..., None, :]).abs_() <= n_chunks_before


def packed_codes(buckets: torch.Tensor, chunks: torch.Tensor, stride: int | None) -> torch.Tensor:
    """`bucket * stride + chunk` (stride None: the chunk alone, for attention across buckets).

    With `stride > n_chunks + n_chunks_before`, two codes differ by 0..n_chunks_before exactly when
    the buckets are equal and the query's chunk is 0..n_chunks_before chunks after the key's: the
    paper's attended window (eq. 5) under its same-bucket rule (eqs. 3-4) in one subtraction."""
    return (buckets * 0 + chunks) if stride is None else buckets * stride + chunks


def window_masks(buckets, perm, inverse, real, settings: LSHSettings, n_buckets, dtype):
    """Masks of the look-back without wrap-around, from packed (bucket, chunk) codes.

    Returns (excluded `[b, h, R, n, c, W]`, self_slots `[c, W]`, log_counts or None). A key slot is
    attended when its code is in the query's window (same bucket unless `attend_across_buckets`, an
    existing chunk 0..n_chunks_before back), the key is real and, if causal, not later than the query. Without
    wrap-around a round holds each key once, so for an attended pair N_ij = 1 + the number of
    *other* rounds r' whose codes put j in i's window; with one round there is no correction. The
    self key sits at the diagonal of the query's own chunk (the last block of the window)."""
    b, h, rounds, padded = perm.shape
    c, nb = settings.chunk_length, settings.n_chunks_before
    n_chunks = padded // c
    stride = None if settings.attend_across_buckets else n_chunks + nb + 1
    top_code = n_chunks + (stride or 0) * (n_buckets + 1)  # above every code (padding: bucket n_buckets)
    sentinel = -(top_code + nb + 1)  # code_i - sentinel > nb for every query: in no window
    itype = torch.int64 if 4 * (top_code + nb + 1) >= 2 ** 31 else torch.int32
    slot_chunk = (torch.arange(padded, device=perm.device) // c).to(itype)

    sorted_codes = packed_codes(torch.gather(buckets, -1, perm).to(itype), slot_chunk, stride)
    q_codes = sorted_codes.view(b, h, rounds, n_chunks, c)
    keep = torch.gather(real[:, None, None, :].expand(b, h, rounds, padded), -1, perm)
    k_codes = torch.where(keep, sorted_codes, sentinel).view(b, h, rounds, n_chunks, c)
    k_codes, valid = look_back(k_codes, nb, False)
    k_codes = k_codes.masked_fill(~valid, sentinel)
    excluded = ~in_window(2 * q_codes - nb, 2 * k_codes, nb)
    if settings.causal:
        q_pos = perm.to(itype).view(b, h, rounds, n_chunks, c)
        k_pos, _ = look_back(q_pos, nb, False)
        excluded |= k_pos[..., None, :] > q_pos[..., :, None]

    slots = torch.arange(c, device=perm.device)
    self_slots = torch.arange((nb + 1) * c, device=perm.device) == (nb * c + slots)[:, None]  # [c, W]

    log_counts = None
    if settings.dedup and rounds > 1:
        # every round's code of every position, position-major: [b, h, L', R']
        by_position = packed_codes(buckets.to(itype), (inverse // c).to(itype), stride).transpose(2, 3)
        at_slots = SortedOrder(perm, inverse).sort(by_position)  # [b, h, R, L', R']
        q_all = at_slots.view(b, h, rounds, n_chunks, c, rounds)
        k_all, _ = look_back(q_all, nb, False)
        own = torch.arange(rounds, device=perm.device).view(1, 1, rounds, 1, 1, 1)
        extra = None
        for offset in range(1, rounds):
            other = (own + offset) % rounds
            q_other = torch.gather(q_all, -1, other.expand(*q_all.shape[:-1], 1))[..., 0]
            k_other = torch.gather(k_all, -1, other.expand(*k_all.shape[:-1], 1))[..., 0]
            hit = in_window(2 * q_other - nb, 2 * k_other, nb)
            extra = hit.to(dtype) if extra is None else extra.add_(hit)
        log_counts = extra.log1p_()
    return excluded, self_slots, log_counts


def wrapped_masks(buckets, perm, inverse, real, settings: LSHSettings, n_buckets, dtype):
    """Masks of the look-back with wrap-around (trax, HF), from positions and bucket ids per slot.

    Returns (excluded, self_slots, log_counts or None), all `[b, h, R, n, c, W]` (self_slots: the
    slots holding the query's own position; a wrapped window can hold it in another round)."""
    b, h, rounds, padded = perm.shape
    chunk_length, n_chunks_before = settings.chunk_length, settings.n_chunks_before
    across = settings.attend_across_buckets
    n_chunks = padded // chunk_length
    q_pos = perm.view(b, h, rounds, n_chunks, chunk_length)
    k_pos, _ = look_back(q_pos, n_chunks_before, True)
    real_keys = gather_positions(real[:, None, :].expand(b, h, padded), k_pos)
    excluded = ~real_keys[..., None, :]
    if settings.causal:
        excluded = excluded | (k_pos[..., None, :] > q_pos[..., :, None])
    if not across:
        ids = bucket_ids_with_round(torch.gather(buckets, -1, perm), n_buckets)
        q_ids = ids.view(b, h, rounds, n_chunks, chunk_length)
        k_ids, _ = look_back(q_ids, n_chunks_before, True)
        excluded = excluded | (k_ids[..., None, :] != q_ids[..., :, None])
    log_counts = None
    if settings.dedup:
        counts = duplicate_counts(q_pos, k_pos, inverse, chunk_length, n_chunks_before, True,
                                  None if across else buckets)
        log_counts = counts.clamp_min(1).to(dtype).log()
    return excluded, q_pos[..., :, None] == k_pos[..., None, :], log_counts


# ---------------------------------------------------------------------------------- 5. logits


def lsh_logits(
    q: torch.Tensor,
    k: torch.Tensor,
    self_slots: torch.Tensor,
    excluded: torch.Tensor,
    log_counts: torch.Tensor | None,
) -> torch.Tensor:
    """q . k (keys already unit-norm) with the self logit replaced by -1e5, `log N_ij` subtracted
    (dedup), and excluded keys replaced by -1e9, in place on the product. q `[..., c, d]`, k
    `[..., W, d]`; self_slots, excluded and log_counts broadcast to `[..., c, W]`."""
    logits = torch.matmul(q, k.transpose(-1, -2))
    logits.masked_fill_(self_slots, SELF_MASK_VALUE)
    if log_counts is not None:
        logits.sub_(log_counts)
    return logits.masked_fill_(excluded, MASK_VALUE)


# ---------------------------------------------------------------------------------- 6. attend, merge


class _SoftmaxAndLogSumExp(torch.autograd.Function):
    """(softmax(x), logsumexp(x)) over the last dim with one exp.

    z = max x - log max p: the largest probability is p_m = exp(x_m - z) at the largest logit x_m.
    Backward: dz/dx = p, so dx = softmax's backward of dp plus p * dz."""

    @staticmethod
    def forward(ctx, x):
        probs = torch.softmax(x, dim=-1)
        lse = x.amax(dim=-1) - probs.amax(dim=-1).log()
        ctx.save_for_backward(probs)
        return probs, lse

    @staticmethod
    def backward(ctx, grad_probs, grad_lse):
        (probs,) = ctx.saved_tensors
        grad = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        return grad.addcmul_(probs, grad_lse[..., None])


def attend_per_round(logits: torch.Tensor, values: torch.Tensor, probs_dropout: ProbsDropout):
    """Softmax over each window: (o^(r) `[..., c, d]`, z^(r) = logsumexp `[..., c]`)."""
    probs, lse = _SoftmaxAndLogSumExp.apply(logits)
    if probs_dropout is not None:
        probs = probs_dropout(probs)
    return torch.matmul(probs, values), lse


def merge_rounds(outputs: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """o = sum_r softmax_r(z^(r)) o^(r) (paper eq. 14). outputs `[b, h, R, L, d]`, lse `[b, h, R, L]`."""
    if outputs.shape[2] == 1:
        return outputs[:, :, 0]
    weights = torch.softmax(lse, dim=2)
    return (weights[..., None] * outputs).sum(dim=2)


# ---------------------------------------------------------------------------------- the function


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
    """LSH attention given the buckets (steps 2-6 of the module docstring).

    qk, v `[batch, heads, length, d_head]`; buckets `[batch, heads, n_rounds, length]` with values
    in `[0, n_buckets)`; `settings` (default `LSHSettings()`, the paper's) with any of its fields
    given as keywords instead (`chunk_length=64, dedup=False`); key_padding_mask `[batch, length]`
    (True = a real key) or None; probs_dropout: applied to each round's attention probabilities.
    Returns `[batch, heads, length, d_head]` in v's dtype."""
    s = (settings or LSHSettings()).replace(**keywords)
    chunk_length, n_chunks_before, wrap_lookback = s.chunk_length, s.n_chunks_before, s.wrap_lookback
    if chunk_length < 1 or n_chunks_before < 0:
        raise ValueError(f"chunk_length={chunk_length} must be >= 1 and n_chunks_before={n_chunks_before} >= 0")
    b, h, length, _ = qk.shape
    rounds = buckets.shape[2]
    dtype = _compute_dtype(qk)
    with torch.autocast(qk.device.type, enabled=False):
        qk_, v_, buckets, real = pad_to_chunks(
            qk.to(dtype), v.to(dtype), buckets, chunk_length, n_buckets, key_padding_mask
        )
        padded = qk_.shape[2]
        n_chunks = padded // chunk_length

        perm, inverse = sort_by_bucket(buckets)
        order = SortedOrder(perm, inverse)
        queries = order.sort(qk_).view(b, h, rounds, n_chunks, chunk_length, -1)
        keys, _ = look_back(order.sort(unit_norm_keys(qk_)).view_as(queries), n_chunks_before, wrap_lookback)
        values, _ = look_back(order.sort(v_).view_as(queries), n_chunks_before, wrap_lookback)

        masks = wrapped_masks if wrap_lookback else window_masks
        excluded, self_slots, log_counts = masks(buckets, perm, inverse, real, s, n_buckets, dtype)
        logits = lsh_logits(queries, keys, self_slots, excluded, log_counts)
        out, lse = attend_per_round(logits, values, probs_dropout)

        merged = merge_rounds(order.unsort(out), order.unsort(lse)[..., 0])
    return merged[:, :, :length].to(v.dtype)


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
    """Angular LSH attention with shared QK (paper section 2), given explicit rotations.

    qk, v `[batch, heads, length, d_head]`; rotations `[heads, d_head, n_rounds, n_buckets // 2]`
    or a list of such tensors (factorised buckets); `settings` and keywords as for
    `lsh_attention_from_buckets`. Returns `[batch, heads, length, d_head]`."""
    buckets = hash_buckets(qk, rotations)
    return lsh_attention_from_buckets(
        qk, v, buckets, settings, n_buckets=n_buckets_of(rotations), key_padding_mask=key_padding_mask,
        probs_dropout=probs_dropout, **keywords,
    )
