"""Local attention: each query attends the keys of its own chunk and of `n_chunks_before` chunks
before it (and `n_chunks_after` after it), with separate Q and K (trax's local / time-bin
attention, transformers' `LocalSelfAttention`).

Exact semantics (shapes `[batch, heads, length, d_head]`): with chunks of `c = chunk_length`
positions, chunk(i) = i // c, query i attends key j when

    chunk(i) - n_chunks_before <= chunk(j) <= chunk(i) + n_chunks_after,
    j <= i under `causal`, and key_padding_mask[j] is True (when given);

logits are q_i . k_j / sqrt(d_head) (no self mask: a query attends its own position), the softmax
runs over the allowed keys only, and out_i = sum_j p_ij v_j. There is no wrap-around: the first
chunk has no chunk before it (transformers wraps; under a causal mask the wrapped keys are masked
anyway). Computed chunk by chunk ([n_chunks, c, (before + 1 + after) c] logits, never length^2),
in at least fp32 with autocast off. `LocalAttentionCore` runs it in the model (`attention=local`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..primitives.attention_core import AttentionCore
from .common import MASK_VALUE, ProbsDropout


def chunk_window(x: torch.Tensor, n_chunks_before: int, n_chunks_after: int) -> torch.Tensor:
    """[b, h, n, c, ...] -> [b, h, n, (before + 1 + after) * c, ...]: each chunk's window of chunks,
    zeros where the window runs past either end."""
    n = x.shape[2]
    pad = [0, 0] * (x.dim() - 3) + [n_chunks_before, n_chunks_after]
    padded = F.pad(x, pad)
    parts = [padded[:, :, offset:offset + n] for offset in range(n_chunks_before + 1 + n_chunks_after)]
    return torch.cat(parts, dim=3)


def local_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    chunk_length: int,
    n_chunks_before: int = 1,
    n_chunks_after: int = 0,
    causal: bool = True,
    key_padding_mask: torch.Tensor | None = None,
    probs_dropout: ProbsDropout = None,
) -> torch.Tensor:
    """Local attention of the module docstring over `[batch, heads, length, d_head]` inputs;
    key_padding_mask `[batch, length]` (True = a real key) or None. Returns v's shape and dtype."""
    if chunk_length < 1 or n_chunks_before < 0 or n_chunks_after < 0:
        raise ValueError(f"chunk_length={chunk_length} must be >= 1 and n_chunks_before={n_chunks_before},"
                         f" n_chunks_after={n_chunks_after} >= 0")
    b, h, length, d = q.shape
    c = chunk_length
    n = -(-length // c)
    extra = n * c - length
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(q.device.type, enabled=False):
        def chunks(x: torch.Tensor) -> torch.Tensor:
            return F.pad(x.to(dtype), (0, 0, 0, extra)).view(b, h, n, c, d)

        window = (n_chunks_before, n_chunks_after)
        queries, keys, values = chunks(q), chunk_window(chunks(k), *window), chunk_window(chunks(v), *window)
        positions = torch.arange(n * c, device=q.device).view(1, 1, n, c)
        q_pos = positions[..., :, None]  # [1, 1, n, c, 1]
        # position + 1 of each window slot; 0 where the window runs past either end
        slots = chunk_window(positions + 1, *window)[..., None, :]  # [1, 1, n, 1, W]
        real = torch.ones(1, n * c, dtype=torch.bool, device=q.device)
        real[:, length:] = False
        if key_padding_mask is not None:
            real = real & F.pad(key_padding_mask.bool(), (0, extra), value=False)
        real_keys = chunk_window(real.view(-1, 1, n, c), *window)[..., None, :]  # [b or 1, 1, n, 1, W]
        allowed = (slots > 0) & real_keys
        if causal:
            allowed = allowed & (slots - 1 <= q_pos)
        logits = torch.matmul(queries, keys.transpose(-1, -2)) * d ** -0.5
        logits = logits.masked_fill(~allowed, MASK_VALUE)
        probs = torch.softmax(logits, dim=-1)
        if probs_dropout is not None:
            probs = probs_dropout(probs)
        out = torch.matmul(probs, values).view(b, h, n * c, d)
    return out[:, :, :length].to(v.dtype)


class LocalAttentionCore(AttentionCore):
    """Local attention configured by an `attention=local` config (separate Q and K)."""

    shared_qk = False

    def __init__(self, attention: Any):
        self.chunk_length = int(attention.chunk_length)
        self.n_chunks_before = int(attention.n_chunks_before)
        self.n_chunks_after = int(attention.n_chunks_after)
        self.causal = bool(attention.causal)
        self.dropout = float(attention.dropout)

    def __call__(self, q, k, v, ctx, layer, key_padding_mask=None):
        return local_attention(
            q, k, v, chunk_length=self.chunk_length, n_chunks_before=self.n_chunks_before,
            n_chunks_after=self.n_chunks_after, causal=self.causal, key_padding_mask=key_padding_mask,
            probs_dropout=self.probs_dropout(ctx, self.dropout, layer),
        )
