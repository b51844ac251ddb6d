"""One cache per attention layer for decoding: its keys, values and (LSH) buckets of every round.

A cache's `attend(q, k, v)` takes the projections of the next `m` positions (`[batch, heads, m,
d_head]`; `k` is None for shared-QK attention), stores them after the positions already held, and
returns those positions' attention outputs over every stored key up to and including their own:
one query row per new position, never a pass over the whole prefix (docs/sampling.md).

What a row computes is the model's attention over the prefix with the sequence in one chunk
(chunk_length >= length), the same rotations and the same masks:

* full attention, separate Q and K: softmax(q k^T / sqrt(d)) v over keys j <= i;
* full attention, shared QK: the logits of `attention.full.shared_qk_logits` (unit or raw keys,
  the self logit replaced, added to or left) over keys j <= i;
* LSH (attention/lsh.py and docs/lsh-attention.md): each position is hashed once, with the
  rotations the model draws for its trained length, and its buckets of every round are kept. In
  round r query i attends the stored keys j <= i with h_r(j) == h_r(i) (the paper's P_i^(r),
  eq. 3, without chunks); its own logit is replaced by -1e5; with `dedup` every attended logit
  loses log N_ij, N_ij the number of rounds in which j shares i's bucket; each round gives an
  output and a log-sum-exp, merged by eq. 14. With `attend_across_buckets` every round attends
  every stored key. With one chunk, wrap-around adds the same count to every key of a round, so
  it changes nothing and is ignored here.

`CACHES` maps an attention core's class to the function that builds its cache; another attention
plugs in with `register_cache(CoreClass, build)`, as local attention does (local_cache.py, which
incremental.py imports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..attention.common import MASK_VALUE, SELF_MASK_VALUE, unit_norm_keys
from ..attention.cores import FullAttentionCore
from ..attention.lsh import hash_buckets
from ..attention.lsh_core import LSHAttentionCore
from ..errors import UserError
from ..primitives.attention_core import AttentionCore
from ..primitives.context import ForwardContext


@dataclass
class CacheSpec:
    """What every cache needs to know: sizes, where its randomness comes from, its layer."""

    batch: int
    n_heads: int
    d_head: int
    max_length: int  # positions the cache can hold
    rotation_length: int  # the sequence length LSH draws its bucket count for (the trained length)
    layer: int
    ctx: ForwardContext
    device: torch.device
    dtype: torch.dtype


class AttentionCache:
    """Stored rows `[batch, heads, max_length, width]` filled up to `length`."""

    def __init__(self, spec: CacheSpec):
        self.spec, self.length = spec, 0

    def _store(self, name: str, rows: torch.Tensor) -> torch.Tensor:
        """Append `rows` `[b, h, m, w]` to the stored tensor `name`; returns all stored rows so far."""
        store = getattr(self, name, None)
        if store is None:
            b, h, _, w = rows.shape
            store = torch.empty(b, h, self.spec.max_length, w, dtype=rows.dtype, device=rows.device)
            setattr(self, name, store)
        m = rows.shape[2]
        store[:, :, self.length : self.length + m] = rows
        return store[:, :, : self.length + m]

    def _advance(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(query positions `[m]`, key positions `[length + m]`) of this call; checks the room."""
        if self.length + m > self.spec.max_length:
            raise UserError(f"decoding past {self.spec.max_length} positions, the most this cache holds")
        device = self.spec.device
        queries = torch.arange(self.length, self.length + m, device=device)
        keys = torch.arange(self.length + m, device=device)
        return queries, keys

    def attend(self, q: torch.Tensor, k: torch.Tensor | None, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


class FullCache(AttentionCache):
    """Full attention: separate Q and K (scaled dot product), or shared QK (the LSH logits)."""

    def __init__(self, spec: CacheSpec, core: FullAttentionCore):
        super().__init__(spec)
        self.core = core

    def attend(self, q, k, v):
        queries, keys = self._advance(q.shape[2])
        dtype = _compute_dtype(q)
        q = q.to(dtype)
        if not self.core.shared_qk:
            stored_k = self._store("keys", k.to(dtype))
            logits = torch.matmul(q, stored_k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        else:
            stored = self._store("keys", unit_norm_keys(q) if self.core.keys == "unit" else q)
            logits = torch.matmul(q, stored.transpose(-1, -2))
            if self.core.keys == "raw":
                logits = logits * q.shape[-1] ** -0.5
            if self.core.self_mask:
                own = queries[:, None] == keys[None, :]
                if self.core.self_mask_mode == "replace":
                    logits = logits.masked_fill(own, self.core.self_mask_value)
                else:
                    logits = logits + own.to(logits.dtype) * self.core.self_mask_value
        logits = logits.masked_fill(keys[None, :] > queries[:, None], MASK_VALUE)
        values = self._store("values", v.to(dtype))
        self.length += q.shape[2]
        return torch.matmul(torch.softmax(logits, dim=-1), values).to(v.dtype)


class LSHCache(AttentionCache):
    """LSH attention: unit keys, values and every round's bucket of each stored position."""

    def __init__(self, spec: CacheSpec, core: LSHAttentionCore):
        super().__init__(spec)
        self.core, self.settings = core, core.settings
        self.rotations = core.rotations(spec.ctx, spec.layer, spec.n_heads, spec.d_head,
                                        core.factors(spec.rotation_length), spec.device, batch=spec.batch)

    def attend(self, q, k, v):
        queries, keys = self._advance(q.shape[2])
        dtype = _compute_dtype(q)
        q = q.to(dtype)
        stored_keys = self._store("keys", unit_norm_keys(q))
        values = self._store("values", v.to(dtype))
        buckets = hash_buckets(q, self.rotations)  # [b, h, R, m]
        stored_buckets = self._store("buckets", buckets.transpose(2, 3)).transpose(2, 3)  # [b, h, R, T]
        self.length += q.shape[2]

        logits = torch.matmul(q, stored_keys.transpose(-1, -2))  # [b, h, m, T]
        logits = logits.masked_fill(queries[:, None] == keys[None, :], SELF_MASK_VALUE)
        later = keys[None, :] > queries[:, None]  # [m, T]
        if self.settings.attend_across_buckets:
            attended = ~later.expand(*logits.shape[:2], 1, *later.shape)  # [b, h, 1 round, m, T]
        else:
            same = buckets[..., :, None] == stored_buckets[..., None, :]  # [b, h, R, m, T]
            attended = same & ~later
        logits = logits[:, :, None].expand(-1, -1, attended.shape[2], -1, -1)
        if self.settings.dedup and not self.settings.attend_across_buckets:
            counts = attended.sum(dim=2, keepdim=True).clamp_min(1)  # N_ij
            logits = logits - counts.to(dtype).log()
        logits = logits.masked_fill(~attended, MASK_VALUE)
        probs = torch.softmax(logits, dim=-1)
        outputs = torch.matmul(probs, values[:, :, None])  # [b, h, R, m, d]
        if outputs.shape[2] > 1:
            lse = torch.logsumexp(logits, dim=-1)  # [b, h, R, m]
            outputs = (torch.softmax(lse, dim=2)[..., None] * outputs).sum(dim=2)
        else:
            outputs = outputs[:, :, 0]
        return outputs.to(v.dtype)


CacheBuilder = Callable[[CacheSpec, AttentionCore], AttentionCache]
CACHES: dict[type, CacheBuilder] = {FullAttentionCore: FullCache, LSHAttentionCore: LSHCache}


def register_cache(core_class: type, build: CacheBuilder) -> None:
    """Decode attention cores of `core_class` with the caches `build(spec, core)` makes."""
    CACHES[core_class] = build


def cache_for(core: AttentionCore, spec: CacheSpec) -> AttentionCache:
    """The cache that decodes `core`; UserError for an attention that cannot be decoded."""
    if not getattr(core, "causal", getattr(getattr(core, "settings", None), "causal", True)):
        raise UserError("this model's attention is not causal (attention.causal=false): it cannot generate text"
                        " one token at a time")
    for cls in type(core).__mro__:
        if cls in CACHES:
            return CACHES[cls](spec, core)
    raise UserError(f"no cached decoding for the attention core {type(core).__name__}"
                    f" (decodable: {', '.join(c.__name__ for c in CACHES)})")


__all__ = ["AttentionCache", "CACHES", "CacheSpec", "FullCache", "LSHCache", "cache_for", "register_cache"]
