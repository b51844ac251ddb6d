"""LSH attention, the reference (docs/lsh-attention.md; paper section 2 and Appendix A).

This module defines what LSH attention computes; every faster implementation (the GPU kernels of
`reformer_cli.attention.fast`) implements `lsh_attention_from_buckets` with the same signature and
is tested against it. Each step of the paper is one function below, named after it:

    hash_buckets  ->  pad_to_chunks  ->  sort_by_bucket  ->  look_back  ->  lsh_logits
    (+ duplicate_counts for dedup)  ->  attend_per_round  ->  unsort  ->  merge_rounds

`lsh_attention(qk, v, rotations, ...)` = `hash_buckets` + `lsh_attention_from_buckets`. The split
exists because (a) a fast implementation replaces only the second part, and (b) a reversible
layer's backward recomputation replays the forward's *buckets* (not its rotations: a recomputed
input can differ by rounding and flip a bucket). Both take the settings below as keywords, or as
one `LSHSettings` (primitives/attention_settings.py: the one place their defaults are written).

Exact semantics (shapes `[batch, heads, length, d_head]`; all arithmetic in at least fp32, autocast
off, like `shared_qk_full_attention`):

1. Hash. `rotations` is `[heads, d_head, n_rounds, f/2]`, or a list of such tensors, one per factor
   f_1, f_2, ... of factorised buckets (trax). For one factor with rotation R:
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


def rotations_shape(n_heads: int, d_head: int, n_rounds: int, factor: int) -> tuple[int, int, int, int]:
    """Shape of the rotations of one bucket factor (docs/lsh-attention.md, "Hash")."""
    return (n_heads, d_head, n_rounds, factor // 2)


# ---------------------------------------------------------------------------------- 1. hash


@torch.no_grad()
def hash_buckets(qk: torch.Tensor, rotations: Rotations) -> torch.Tensor:
    """Angular LSH: `argmax([x R ; -x R])` per round (paper section 2), factorised as in trax.

    qk `[batch, heads, length, d_head]` -> buckets `[batch, heads, n_rounds, length]` (int64,
    in `[0, n_buckets_of(rotations))`)."""
    dtype = _compute_dtype(qk)
    x = qk.detach().to(dtype)
    buckets, stride = None, 1
    with torch.autocast(qk.device.type, enabled=False):
        for rot in rotation_factors(rotations):
            rotated = torch.einsum("bhld,hdrk->bhrlk", x, rot.to(device=qk.device, dtype=dtype))
            b = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)
            buckets = b if buckets is None else buckets + stride * b
            stride *= 2 * rot.shape[-1]
    return buckets


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
    """Stable sort of each round by bucket, then position: key `bucket * L + position`.

    buckets `[batch, heads, rounds, L]` -> (perm, inverse): `perm[..., s]` is the original position
    in sorted slot s; `inverse[..., p]` is the sorted slot of position p."""
    length = buckets.shape[-1]
    positions = torch.arange(length, device=buckets.device)
    perm = torch.argsort(buckets * length + positions, dim=-1, stable=True)
    inverse = torch.empty_like(perm).scatter_(-1, perm, positions.expand_as(perm))
    return perm, inverse


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

    chunks `[batch, heads, rounds, n_chunks, c]` (sorted original positions) ->
    (window `[batch, heads, rounds, n_chunks, (n_chunks_before + 1) * c]`, valid) where `valid`
    `[n_chunks, window]` marks slots of existing chunks (None with wrap: every slot exists)."""
    b, h, rounds, n_chunks, c = chunks.shape
    shifts = range(n_chunks_before, -1, -1)
    if wrap:  # trax / HF: roll over all rounds' chunks, concatenated
        flat = chunks.reshape(b, h, rounds * n_chunks, c)
        window = torch.cat([flat.roll(t, dims=2) for t in shifts], dim=-1)
        return window.view(b, h, rounds, n_chunks, -1), None
    window = torch.cat([chunks.roll(t, dims=3) for t in shifts], dim=-1)
    n = torch.arange(n_chunks, device=chunks.device)
    valid = torch.cat([(n - t >= 0)[:, None].expand(n_chunks, c) for t in shifts], dim=-1)
    return window, valid


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


# ---------------------------------------------------------------------------------- 5. logits


def lsh_logits(
    q: torch.Tensor,
    k: torch.Tensor,
    q_pos: torch.Tensor,
    k_pos: torch.Tensor,
    excluded: torch.Tensor,
    log_counts: torch.Tensor | None,
) -> torch.Tensor:
    """q . k (keys already unit-norm) with the self logit replaced by -1e5, `log N_ij` subtracted
    (dedup), and excluded keys replaced by -1e9. q `[..., c, d]`, k `[..., W, d]`; positions
    `[..., c, 1]` / `[..., 1, W]`; excluded and log_counts broadcast to `[..., c, W]`."""
    logits = torch.matmul(q, k.transpose(-1, -2))
    logits = logits.masked_fill(q_pos == k_pos, SELF_MASK_VALUE)
    if log_counts is not None:
        logits = logits - log_counts
    return logits.masked_fill(excluded, MASK_VALUE)


# ---------------------------------------------------------------------------------- 6. attend, merge


def attend_per_round(logits: torch.Tensor, values: torch.Tensor, probs_dropout: ProbsDropout):
    """Softmax over each window: (o^(r) `[..., c, d]`, z^(r) = logsumexp `[..., c]`)."""
    lse = torch.logsumexp(logits, dim=-1)
    probs = torch.exp(logits - lse[..., None])
    if probs_dropout is not None:
        probs = probs_dropout(probs)
    return torch.matmul(probs, values), lse


def unsort(outputs: torch.Tensor, lse: torch.Tensor, inverse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-round results from sorted slots back to original positions.

    outputs `[b, h, R, n, c, d]`, lse `[b, h, R, n, c]`, inverse `[b, h, R, L']` ->
    (`[b, h, R, L', d]`, `[b, h, R, L']`)."""
    b, h, rounds, padded = inverse.shape
    # slot s of round r is row r * L' + s of the rounds' concatenated results
    rows = inverse + torch.arange(rounds, device=inverse.device)[:, None] * padded
    outputs = gather_positions(outputs.reshape(b, h, rounds * padded, -1), rows)
    lse = torch.gather(lse.reshape(b, h, rounds * padded), 2, rows.view(b, h, -1)).view(b, h, rounds, padded)
    return outputs, lse


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
        q_pos = perm.view(b, h, rounds, n_chunks, chunk_length)
        k_pos, valid = look_back(q_pos, n_chunks_before, wrap_lookback)

        queries = gather_positions(qk_, q_pos)  # [b, h, R, n, c, d]
        keys = gather_positions(unit_norm_keys(qk_), k_pos)  # [b, h, R, n, W, d]
        values = gather_positions(v_, k_pos)

        real_keys = gather_positions(real[:, None, :].expand(b, h, padded), k_pos)  # [b, h, R, n, W]
        excluded = ~real_keys[..., None, :]
        if valid is not None:
            excluded = excluded | ~valid[:, None, :]
        if s.causal:
            excluded = excluded | (k_pos[..., None, :] > q_pos[..., :, None])
        if not s.attend_across_buckets:  # the paper's rule: only keys of the query's own bucket
            ids = bucket_ids_with_round(torch.gather(buckets, -1, perm), n_buckets)
            q_ids = ids.view(b, h, rounds, n_chunks, chunk_length)
            k_ids, _ = look_back(q_ids, n_chunks_before, wrap_lookback)
            excluded = excluded | (k_ids[..., None, :] != q_ids[..., :, None])
        log_counts = None
        if s.dedup:
            counts = duplicate_counts(q_pos, k_pos, inverse, chunk_length, n_chunks_before, wrap_lookback,
                                      None if s.attend_across_buckets else buckets)
            log_counts = counts.clamp_min(1).to(dtype).log()

        logits = lsh_logits(queries, keys, q_pos[..., :, None], k_pos[..., None, :], excluded, log_counts)
        out, lse = attend_per_round(logits, values, probs_dropout)

        merged = merge_rounds(*unsort(out, lse, inverse))
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
