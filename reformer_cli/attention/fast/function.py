"""The fast LSH attention as a differentiable function: sort once, run the kernels, keep the sort
order and the softmax statistics for the backward."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from ...primitives.attention_settings import LSHSettings
from .backward import lsh_backward_kernel, output_dot_grad_kernel
from .forward import lsh_forward_kernel, merge_rounds_kernel
from .hashing import bucket_runs, inverse_order
from .runtime import INTERPRET, block, dot_precision


@dataclass(frozen=True)
class Geometry:
    """Sizes and settings of one call (everything the kernels are specialised on)."""

    batch: int
    heads: int
    length: int
    d_head: int
    rounds: int
    settings: LSHSettings

    @property
    def padded(self) -> int:
        """The length rounded up to a multiple of chunk_length."""
        return -(-self.length // self.settings.chunk_length) * self.settings.chunk_length

    @property
    def n_chunks(self) -> int:
        return self.padded // self.settings.chunk_length

    @property
    def rounds_back(self) -> int:
        """DR of the kernels: how many rounds back (0, 1, ...) a window can reach, counting its own.
        With wrap-around and attention across buckets, query i's window in round r holds key j's
        slot of round r - back only if back * n_chunks - (n_chunks - 1) <= n_chunks_before; the
        duplicate counts visit just those rounds. Otherwise only the own round counts."""
        s = self.settings
        if not (s.wrap_lookback and s.attend_across_buckets):
            return 1
        return min(self.rounds, -(-s.n_chunks_before // self.n_chunks) + 1)

    @property
    def window_repeats(self) -> int:
        """REPS of the kernels: the most times one chunk occurs in a window (more than once only
        with wrap-around over fewer chunks, all rounds together, than the window has)."""
        s = self.settings
        return s.n_chunks_before // (self.rounds * self.n_chunks) + 1 if s.wrap_lookback else 1

    def scalar_args(self) -> tuple:
        """H, L, N_CHUNKS, N_TOTAL, R, DR."""
        return self.heads, self.length, self.n_chunks, self.rounds * self.n_chunks, self.rounds, self.rounds_back

    def kernel_args(self, dtype: torch.dtype) -> dict:
        s = self.settings
        return dict(
            C=s.chunk_length, BLOCK_C=block(s.chunk_length), D=self.d_head, BLOCK_D=block(self.d_head),
            NB=s.n_chunks_before, CAUSAL=s.causal, WRAP=s.wrap_lookback,
            SAME_BUCKET_ONLY=not s.attend_across_buckets, DEDUP=s.dedup, REPS=self.window_repeats,
            PREC=dot_precision(dtype), UPCAST=INTERPRET,
        )

    def warps(self, dtype: torch.dtype) -> int:
        """Warps per program. 16-bit inputs: one warpgroup (4 warps) per 64-row tile; compiled for
        sm_90 offline (triton.compile with a GPUTarget), the 64 x 64 forward takes 210 registers
        under the paper's defaults (153 across buckets without the correction) and the backward 255
        with a 16-byte spill at 4 warps, more spills at 8. fp32 (tf32x3 products,
        three times the operands): 8 warps spill least (about 2 KB in the backward). Not yet tuned
        on a GPU; `python -m reformer_cli.attention.fast.aot` prints these numbers."""
        return 8 if dtype == torch.float32 else 4


@torch.no_grad()
def slot_tables(perm: torch.Tensor, sorted_buckets: torch.Tensor, geo: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
    """(inverse, runs), what the kernels read for the duplicate correction (each position's slot in
    every round, hashing.inverse_order) and for the same-bucket rule (each slot's bucket run,
    hashing.bucket_runs); perm stands in for a table the setting does not read."""
    inverse = inverse_order(perm, geo.padded) if geo.settings.dedup else perm
    runs = perm if geo.settings.attend_across_buckets else bucket_runs(sorted_buckets, geo.padded)
    return inverse, runs


def _rows(x: torch.Tensor) -> torch.Tensor:
    """x with unit stride along d_head (the kernels read rows of d_head contiguous values)."""
    return x if x.stride(-1) == 1 else x.contiguous()


def _empty_heads_last(geo: Geometry, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An empty `[batch, heads, length, d_head]` tensor laid out as `[batch, length, heads, d_head]`,
    so the model's merge_heads (transpose + reshape) is free."""
    return torch.empty(geo.batch, geo.length, geo.heads, geo.d_head, dtype=dtype, device=device).transpose(1, 2)


def attention_forward(qk, v, perm, n_real, tables, geo: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
    """(output `[batch, heads, length, d_head]` in v's dtype, softmax statistics fp32
    `[2, batch x heads, length]`: the row maximum M and log Lambda over all rounds' slots)."""
    bh = geo.batch * geo.heads
    out = _empty_heads_last(geo, v.dtype, v.device)
    stats = torch.empty(2, bh, geo.length, dtype=torch.float32, device=v.device)
    if geo.rounds == 1:  # the kernel writes the final output and statistics
        o_r, m_r, l_r = out[None], stats[0][None], stats[1][None]
    else:  # per-round results, merged below
        o_r = torch.empty(geo.rounds, geo.batch, geo.heads, geo.length, geo.d_head, dtype=v.dtype, device=v.device)
        m_r, l_r = torch.empty(2, geo.rounds, bh, geo.length, dtype=torch.float32, device=v.device)
    lsh_forward_kernel[(geo.rounds * geo.n_chunks, bh)](
        qk, v, perm, n_real, *tables, o_r, m_r, l_r,
        qk.stride(0), qk.stride(1), qk.stride(2), v.stride(0), v.stride(1), v.stride(2),
        o_r.stride(0), o_r.stride(1), o_r.stride(2), o_r.stride(3), m_r.stride(0), m_r.stride(1),
        *geo.scalar_args(),
        **geo.kernel_args(qk.dtype), num_warps=geo.warps(qk.dtype),
    )
    if geo.rounds > 1:
        block_l = 64
        merge_rounds_kernel[(triton.cdiv(geo.length, block_l), bh)](
            o_r, m_r, l_r, out, stats[0], stats[1],
            o_r.stride(0), o_r.stride(1), o_r.stride(2), o_r.stride(3), m_r.stride(0), m_r.stride(1),
            out.stride(0), out.stride(1), out.stride(2),
            geo.heads, geo.length,
            R=geo.rounds, BLOCK_L=block_l, D=geo.d_head, BLOCK_D=block(geo.d_head), num_warps=4,
        )
    return out, stats


def attention_backward(qk, v, out, dout, perm, n_real, tables, stats,
                       geo: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
    """(d qk, d v) in the inputs' dtypes and layouts."""
    bh = geo.batch * geo.heads
    dout = _rows(dout)
    delta = torch.empty(bh, geo.length, dtype=torch.float32, device=v.device)
    block_l = 64
    output_dot_grad_kernel[(triton.cdiv(geo.length, block_l), bh)](
        out, dout, delta, out.stride(0), out.stride(1), out.stride(2), dout.stride(0), dout.stride(1), dout.stride(2),
        geo.heads, geo.length, BLOCK_L=block_l, D=geo.d_head, BLOCK_D=block(geo.d_head), num_warps=4,
    )
    atomic = geo.rounds > 1  # each position appears once per round: one round needs no atomics
    if atomic:
        dqk = torch.zeros_like(qk, dtype=torch.float32)
        dv = torch.zeros_like(v, dtype=torch.float32)
    else:
        dqk, dv = torch.empty_like(qk), torch.empty_like(v)
    lsh_backward_kernel[(geo.rounds * geo.n_chunks, bh)](
        qk, v, dout, perm, n_real, *tables, stats[0], stats[1], delta, dqk, dv,
        qk.stride(0), qk.stride(1), qk.stride(2), v.stride(0), v.stride(1), v.stride(2),
        dout.stride(0), dout.stride(1), dout.stride(2),
        dqk.stride(0), dqk.stride(1), dqk.stride(2), dv.stride(0), dv.stride(1), dv.stride(2),
        *geo.scalar_args(),
        ATOMIC=atomic, **geo.kernel_args(qk.dtype), num_warps=geo.warps(qk.dtype),
    )
    if atomic:
        dqk, dv = dqk.to(qk.dtype), dv.to(v.dtype)
    return dqk, dv


class LSHAttentionFunction(torch.autograd.Function):
    """out = LSH attention of (qk, v) for a given sort order; gradients for qk and v.

    inverse, runs: `slot_tables`, what the duplicate correction and the same-bucket rule read."""

    @staticmethod
    def forward(ctx, qk, v, perm, n_real, inverse, runs, geo: Geometry):
        out, stats = attention_forward(qk, v, perm, n_real, (inverse, runs), geo)
        ctx.save_for_backward(qk, v, out, perm, n_real, inverse, runs, stats)
        ctx.geo = geo
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        qk, v, out, perm, n_real, inverse, runs, stats = ctx.saved_tensors
        dqk, dv = attention_backward(qk, v, out, dout, perm, n_real, (inverse, runs), stats, ctx.geo)
        return dqk, dv, None, None, None, None, None
