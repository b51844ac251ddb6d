"""The decoding cache of local attention (attention/local.py), registered with `register_cache`.

A causal local query at position i attends the keys j <= i whose chunk lies in its window:

    chunk(i) - n_chunks_before <= chunk(j),  chunk(p) = p // chunk_length,

with logits q_i . k_j / sqrt(d_head) and no self mask. Chunks are fixed by position, not by the
content as LSH's are, so this is exactly what the model computes in training, whatever the
length: the cache needs no whole-sequence stand-in. It stores every key and value but a call reads
only the rows its queries' windows reach (at most (n_chunks_before + 1) chunks before the first
new position, plus the new ones). A causal model has `n_chunks_after = 0` (the config says so).
"""

from __future__ import annotations

import torch

from ..attention.common import MASK_VALUE
from ..attention.local import LocalAttentionCore
from .attention_caches import AttentionCache, CacheSpec, register_cache


class LocalCache(AttentionCache):
    """Local attention: keys and values of every stored position, read a window at a time."""

    def __init__(self, spec: CacheSpec, core: LocalAttentionCore):
        super().__init__(spec)
        self.chunk_length, self.n_chunks_before = core.chunk_length, core.n_chunks_before

    def attend(self, q, k, v):
        queries, keys = self._advance(q.shape[2])
        dtype = torch.promote_types(q.dtype, torch.float32)
        stored_keys = self._store("keys", k.to(dtype))
        values = self._store("values", v.to(dtype))
        self.length += q.shape[2]

        chunk = self.chunk_length
        first = max(0, (int(queries[0]) // chunk - self.n_chunks_before) * chunk)  # the earliest key any query sees
        keys, stored_keys, values = keys[first:], stored_keys[:, :, first:], values[:, :, first:]
        window_start = (queries // chunk - self.n_chunks_before).clamp_min(0) * chunk  # [m]
        attended = (keys[None, :] >= window_start[:, None]) & (keys[None, :] <= queries[:, None])  # [m, T]
        logits = torch.matmul(q.to(dtype), stored_keys.transpose(-1, -2)) * q.shape[-1] ** -0.5
        logits = logits.masked_fill(~attended, MASK_VALUE)
        return torch.matmul(torch.softmax(logits, dim=-1), values).to(v.dtype)


register_cache(LocalAttentionCore, LocalCache)

__all__ = ["LocalCache"]
