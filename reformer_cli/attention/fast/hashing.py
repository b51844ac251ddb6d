"""Hashing and sorting for the fast path (steps 1-3 of the reference, attention/lsh.py).

* `hash_buckets`: one kernel per bucket factor computes `argmax([x R ; -x R])` for every round
  without ever writing the rotated vectors (the reference materialises `[.., length, f/2]` per
  round, which at 64K tokens and unfactorised buckets is gigabytes). Columns of R are visited in
  tiles with a running (max, first index), so ties resolve to the first index exactly as
  `torch.argmax` does on the concatenation. bf16 / fp16 inputs are exact in that dtype, and the
  fp32 rotations are split into three pieces of it (hi + mid + lo, 24 bits), so every product is
  the fp32 product of the reference; fp32 inputs use tf32x3 products (about fp32 accuracy). Buckets
  agree with `lsh.hash_buckets` except where two candidates are equal to within fp32 rounding.
* `sort_keys` + `sorted_order`: the padding / key-mask rule of `lsh.pad_to_chunks` (such positions
  go to bucket n_buckets) applied while writing int16 keys (int32 above 32,767 buckets), then one
  stable segmented sort per (batch, head, round): positions come out in order within a bucket, which
  is the reference's `bucket * L + position` order. The permutation is kept as int32 for the
  backward (the kernels gather and scatter by original position). Under the paper's same-bucket
  rule the kernels also read each slot's bucket run (`bucket_runs`), and for the duplicate
  correction each position's slot in every round (`inverse_order`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..lsh import Rotations, rotation_factors
from .runtime import INTERPRET, block, dot_precision


@triton.jit
def hash_kernel(
    X, ROT, OUT,
    s_xb, s_xh, s_xl, s_rb, s_rh, s_rd, s_rr,
    H, L, R, F2, STRIDE,
    BLOCK_L: tl.constexpr, D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_F: tl.constexpr,
    SPLIT: tl.constexpr, ACCUMULATE: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    """OUT[b, h, r, l] (+)= STRIDE * argmax([x R_bhr ; -x R_bhr]) for one bucket factor (F2 = f/2);
    s_rb = 0: rotations shared by the batch."""
    bh = tl.program_id(1)
    rnd = tl.program_id(2)
    b = bh // H
    h = bh % H
    pos = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    dims = tl.arange(0, BLOCK_D)
    pos_ok = pos < L
    x = tl.load(X + b.to(tl.int64) * s_xb + h.to(tl.int64) * s_xh + pos.to(tl.int64)[:, None] * s_xl + dims[None, :],
                mask=pos_ok[:, None] & (dims < D)[None, :], other=0.0)
    if UPCAST:
        x = x.to(tl.float32)
    best_pos = tl.full([BLOCK_L], float("-inf"), tl.float32)
    best_neg = tl.full([BLOCK_L], float("-inf"), tl.float32)
    arg_pos = tl.zeros([BLOCK_L], tl.int32)
    arg_neg = tl.zeros([BLOCK_L], tl.int32)
    for f0 in range(0, F2, BLOCK_F):
        cols = f0 + tl.arange(0, BLOCK_F)
        col_ok = cols < F2
        rot = tl.load(ROT + b.to(tl.int64) * s_rb + h.to(tl.int64) * s_rh + dims[:, None] * s_rd + rnd * s_rr
                      + cols[None, :],
                      mask=(dims < D)[:, None] & col_ok[None, :], other=0.0)
        if SPLIT:
            hi = rot.to(X.dtype.element_ty)
            rest = rot - hi.to(tl.float32)
            mid = rest.to(X.dtype.element_ty)
            lo = (rest - mid.to(tl.float32)).to(X.dtype.element_ty)
            if UPCAST:
                y = tl.dot(x, hi.to(tl.float32), input_precision="ieee")
                y += tl.dot(x, mid.to(tl.float32), input_precision="ieee")
                y += tl.dot(x, lo.to(tl.float32), input_precision="ieee")
            else:
                y = tl.dot(x, hi)
                y += tl.dot(x, mid)
                y += tl.dot(x, lo)
        else:
            y = tl.dot(x, rot, input_precision=PREC)
        y_pos = tl.where(col_ok[None, :], y, float("-inf"))
        y_neg = tl.where(col_ok[None, :], -y, float("-inf"))
        top_pos = tl.max(y_pos, 1)
        top_neg = tl.max(y_neg, 1)
        at_pos = tl.argmax(y_pos, 1, tie_break_left=True).to(tl.int32) + f0
        at_neg = tl.argmax(y_neg, 1, tie_break_left=True).to(tl.int32) + f0
        better_pos = top_pos > best_pos  # strictly: an earlier tile keeps ties (first index wins)
        better_neg = top_neg > best_neg
        arg_pos = tl.where(better_pos, at_pos, arg_pos)
        arg_neg = tl.where(better_neg, at_neg, arg_neg)
        best_pos = tl.where(better_pos, top_pos, best_pos)
        best_neg = tl.where(better_neg, top_neg, best_neg)
    bucket = tl.where(best_pos >= best_neg, arg_pos, F2 + arg_neg).to(tl.int64) * STRIDE
    out = OUT + (bh.to(tl.int64) * R + rnd) * L + pos
    if ACCUMULATE:
        bucket += tl.load(out, mask=pos_ok, other=0)
    tl.store(out, bucket, mask=pos_ok)


@torch.no_grad()
def hash_buckets(qk: torch.Tensor, rotations: Rotations) -> torch.Tensor:
    """The fast `lsh.hash_buckets`: qk `[batch, heads, length, d_head]` (fp16 / bf16 / fp32) and
    rotations `[heads, d_head, n_rounds, f/2]` shared by the batch, or `[batch, heads, d_head,
    n_rounds, f/2]` one set per example (or a list, factorised) -> int64 buckets
    `[batch, heads, n_rounds, length]`."""
    b, h, length, d = qk.shape
    x = qk.detach()
    if x.stride(-1) != 1:
        x = x.contiguous()
    factors = rotation_factors(rotations)
    rounds = factors[0].shape[-2]
    out = torch.empty(b, h, rounds, length, dtype=torch.int64, device=qk.device)
    block_l = 64
    stride = 1
    for i, rot in enumerate(factors):
        rot = rot.to(device=qk.device, dtype=torch.float32).contiguous()
        f2 = rot.shape[-1]
        block_f = min(block(f2), 128)
        hash_kernel[(triton.cdiv(length, block_l), b * h, rounds)](
            x, rot, out,
            x.stride(0), x.stride(1), x.stride(2), rot.stride(-5) if rot.dim() == 5 else 0,
            rot.stride(-4), rot.stride(-3), rot.stride(-2),
            h, length, rounds, f2, stride,
            BLOCK_L=block_l, D=d, BLOCK_D=block(d), BLOCK_F=block_f,
            SPLIT=x.dtype != torch.float32, ACCUMULATE=i > 0, PREC=dot_precision(x.dtype), UPCAST=INTERPRET,
            num_warps=4,
        )
        stride *= 2 * f2
    return out


@triton.jit
def sort_keys_kernel(
    BUCKETS, MASK, KEYS,
    s_bb, s_bh, s_br, s_bl,
    H, R, L, LP, N_BUCKETS,
    HAS_MASK: tl.constexpr, BLOCK: tl.constexpr,
):
    """KEYS[(b, h, r), p] = bucket for a real position p, else N_BUCKETS (padding p >= L, masked keys)."""
    row = tl.program_id(1)  # (batch x head) * R + round
    bh = row // R
    rnd = row % R
    b = bh // H
    h = bh % H
    pos = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    real = pos < L
    if HAS_MASK:
        real = real & (tl.load(MASK + b.to(tl.int64) * L + pos, mask=pos < L, other=0) != 0)
    bucket = tl.load(BUCKETS + b.to(tl.int64) * s_bb + h.to(tl.int64) * s_bh + rnd * s_br + pos.to(tl.int64) * s_bl,
                     mask=pos < L, other=0)
    key = tl.where(real, bucket, N_BUCKETS)
    tl.store(KEYS + row.to(tl.int64) * LP + pos, key.to(KEYS.dtype.element_ty), mask=pos < LP)


@torch.no_grad()
def sorted_order(
    buckets: torch.Tensor, n_buckets: int, padded: int, key_padding_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(perm, sorted_buckets, n_real): perm int32 `[batch x heads, rounds * padded]`, round r's
    sorted slots at `r * padded ...` (slot -> original position); sorted_buckets (int16, or int32
    above 32,767 buckets) in the same layout, the bucket of each slot (n_buckets for padding and
    masked keys); n_real int32 `[batch]`, the number of real (attendable) positions, which occupy
    the first n_real slots of every round."""
    b, h, rounds, length = buckets.shape
    key_dtype = torch.int16 if n_buckets < 2**15 else torch.int32
    keys = torch.empty(b * h * rounds, padded, dtype=key_dtype, device=buckets.device)
    mask = None if key_padding_mask is None else key_padding_mask.to(torch.uint8).contiguous()
    block_p = 1024
    sort_keys_kernel[(triton.cdiv(padded, block_p), b * h * rounds)](
        buckets, mask if mask is not None else keys, keys,
        buckets.stride(0), buckets.stride(1), buckets.stride(2), buckets.stride(3),
        h, rounds, length, padded, n_buckets,
        HAS_MASK=mask is not None, BLOCK=block_p,
    )
    ordered = torch.sort(keys, dim=-1, stable=True)
    perm = ordered.indices.to(torch.int32).view(b * h, rounds * padded)
    if key_padding_mask is None:
        n_real = torch.full((b,), length, dtype=torch.int32, device=buckets.device)
    else:
        n_real = key_padding_mask.to(torch.bool).sum(dim=-1, dtype=torch.int32)
    return perm, ordered.values.view(b * h, rounds * padded), n_real


@torch.no_grad()
def inverse_order(perm: torch.Tensor, padded: int) -> torch.Tensor:
    """The sorted slot of every position in every round (lsh.sort_by_bucket's inverse): int32 in
    perm's layout `[batch x heads, rounds * padded]`, indexed by position."""
    rows = perm.view(-1, padded)
    slots = torch.arange(padded, device=perm.device, dtype=torch.int32).expand_as(rows)
    return torch.empty_like(rows).scatter_(-1, rows.long(), slots).view_as(perm)


@torch.no_grad()
def bucket_runs(sorted_buckets: torch.Tensor, padded: int) -> torch.Tensor:
    """The first and last slot of the bucket of every slot (its run in the sorted order, round-local):
    int32 `[batch x heads, rounds * padded, 2]`. Two slots of a round hold keys of the same bucket
    exactly when one lies in the other's run."""
    rows = sorted_buckets.view(-1, padded)
    first = torch.searchsorted(rows, rows, side="left", out_int32=True)
    last = torch.searchsorted(rows, rows, side="right", out_int32=True) - 1
    return torch.stack([first, last], dim=-1).view(*sorted_buckets.shape, 2)
