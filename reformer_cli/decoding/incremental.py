"""A trained `ReformerLM` run position by position with a cache per attention layer.

`CachedDecoder(model)` holds one `AttentionCache` per layer (attention_caches.py). `feed(tokens)`
takes the next positions of every sequence, `[batch, m]`, and returns their next-token logits
`[batch, m, vocab]`; each call runs the model's own modules (embedding, positions, the blocks'
norms, projections and feed-forward, the final norm and output layer) on those positions only,
and their attention against the caches. A prompt goes in as one call (in blocks of `block`
positions), each sampled token as one more.

Standard layers compute x + F(x), x + G(x); reversible layers Y1 = X1 + F(X2), Y2 = X2 + G(Y1)
from X1 = X2 = the embedding, and the output layer reads LN([Y1; Y2]), as the model's forward
(model/reformer.py, model/reversible.py). At inference nothing is recomputed and dropout is off.
"""

from __future__ import annotations

import torch

from ..attention.common import merge_heads
from ..errors import UserError
from ..model.reformer import ReformerLM
from ..model.reversible import ReversibleStack
from ..primitives.context import ForwardContext, derive_seed
from . import local_cache  # noqa: F401  (registers local attention's cache)
from .attention_caches import AttentionCache, CacheSpec, cache_for


def decoding_context(eval_seed: int, seed: int) -> ForwardContext:
    """The forward context decoding draws its LSH rotations from (evaluation mode)."""
    return ForwardContext(seed=derive_seed(eval_seed, "sample", seed), training=False)


class CachedDecoder:
    def __init__(self, model: ReformerLM, *, batch: int = 1, ctx: ForwardContext | None = None,
                 max_length: int | None = None, block: int = 256):
        self.model, self.ctx, self.block = model, ctx or ForwardContext(), int(block)
        self.max_length = int(max_length or model.seq_len)
        if self.max_length > model.seq_len:
            raise UserError(f"{self.max_length} positions is more than the model's {model.seq_len}"
                            " (the length it was trained on)")
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        d_model = model.embed.embedding_dim
        with torch.no_grad():  # every position's embedding, once
            self.positions = model.positions(torch.zeros(1, self.max_length, d_model, dtype=self.dtype,
                                                         device=self.device))[0]
        self.caches: list[AttentionCache] = []
        for block_ in model.stack.blocks:
            attention = block_.attention.attention
            spec = CacheSpec(batch=batch, n_heads=attention.n_heads, d_head=attention.d_head,
                             max_length=self.max_length, rotation_length=model.seq_len, layer=attention.layer,
                             ctx=self.ctx, device=self.device, dtype=self.dtype)
            self.caches.append(cache_for(attention.core, spec))
        self.reversible = isinstance(model.stack, ReversibleStack)
        self.length = 0

    def _attention(self, block, x: torch.Tensor, cache: AttentionCache) -> torch.Tensor:
        """F(x) for the new positions: the sublayer's norm and projections, attention against the cache."""
        sublayer = block.attention
        attention = sublayer.attention
        q, k, v = attention.project(sublayer.norm(x))
        return attention.to_out(merge_heads(cache.attend(q, k, v)))

    def _feedforward(self, block, x: torch.Tensor) -> torch.Tensor:
        return block.feedforward.chunk(x, self.ctx, 0)

    @torch.no_grad()
    def _feed_block(self, tokens: torch.Tensor) -> torch.Tensor:
        m = tokens.shape[1]
        x = self.model.embed(tokens) + self.positions[self.length : self.length + m].to(self.dtype)
        if self.reversible:
            x1 = x2 = x
            for block, cache in zip(self.model.stack.blocks, self.caches):
                x1 = x1 + self._attention(block, x2, cache)
                x2 = x2 + self._feedforward(block, x1)
            x = torch.cat([x1, x2], dim=-1)
        else:
            for block, cache in zip(self.model.stack.blocks, self.caches):
                x = x + self._attention(block, x, cache)
                x = x + self._feedforward(block, x)
        self.length += m
        return self.model.head(self.model.norm(x))

    def feed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits `[batch, m, vocab]` after each of the positions `tokens` `[batch, m]`."""
        if self.length + tokens.shape[1] > self.max_length:
            raise UserError(f"decoding past {self.max_length} positions (the model's positions end there)")
        if self.model.training:
            raise ValueError("decode a model in eval mode (model.eval())")
        pieces = [self._feed_block(part) for part in tokens.to(self.device).split(self.block, dim=1)]
        return torch.cat(pieces, dim=1)
