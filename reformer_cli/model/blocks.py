"""The two residual functions of a Reformer layer and the standard (non-reversible) stack.

The paper writes a reversible layer as Y1 = X1 + Attention(X2), Y2 = X2 + FeedForward(Y1)
(eqs. 7-9) with layer normalisation moved inside the residual blocks. Here
`AttentionSublayer` is F(x) = Dropout(Attention(LN(x))) and `FeedForwardSublayer` is
G(x) = Dropout(FeedForward(LN(x))). The standard stack applies them as x + F(x), x + G(x);
the reversible stack (reversible.py) couples the same modules, so both hold the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ..attention.cores import AttentionConfig
from ..attention.layer import SelfAttention
from ..config import ModelConfig
from ..primitives.context import ForwardContext
from .chunking import map_chunks
from .feedforward import FeedForward


def layer_norm_eps_of(model: ModelConfig) -> float:
    """The LayerNorms' epsilon: `model.layer_norm_eps` (configs saved before the key existed: 1e-5)."""
    return float(getattr(model, "layer_norm_eps", 1e-5))


def d_head_of(model: ModelConfig) -> int:
    """The width of one attention head: `model.d_head`, or d_model / n_heads when it is null."""
    return model.d_head if model.d_head is not None else model.d_model // model.n_heads


class AttentionSublayer(nn.Module):
    """F(x) = Dropout(Attention(LN(x)))."""

    def __init__(self, model: ModelConfig, attention: AttentionConfig, layer: int):
        super().__init__()
        self.norm = nn.LayerNorm(model.d_model, eps=layer_norm_eps_of(model))
        self.attention = SelfAttention(model.d_model, model.n_heads, d_head_of(model), attention, layer)
        self.dropout, self.layer = float(model.dropout), layer

    def forward(self, x: torch.Tensor, ctx: ForwardContext, key_padding_mask: torch.Tensor | None = None):
        out = self.attention(self.norm(x), ctx, key_padding_mask)
        return ctx.dropout(out, self.dropout, self.layer, "attention_out")


class FeedForwardSublayer(nn.Module):
    """G(x) = Dropout(FeedForward(LN(x))), computed in `model.ff_chunks` chunks along the sequence.

    Every part of G acts on each position alone, so G is chunked as a whole (paper eq. 10:
    Y2^(k) = X2^(k) + FeedForward(Y1^(k))): `chunk(x_k, ctx, k)` is G on the k-th chunk. With more
    than one chunk the forward keeps no chunk's activations and the backward recomputes them chunk
    by chunk (chunking.py); the reversible backward calls `chunk` itself, so its recomputation is
    chunked too. Dropout masks are keyed by the chunk index (chunking.py explains the choice).
    """

    def __init__(self, model: ModelConfig, layer: int):
        super().__init__()
        self.norm = nn.LayerNorm(model.d_model, eps=layer_norm_eps_of(model))
        self.feedforward = FeedForward(model.d_model, model.d_ff, model.ff_activation, float(model.dropout), layer)
        self.dropout, self.layer, self.chunks = float(model.dropout), layer, int(model.ff_chunks)

    def chunk(self, x: torch.Tensor, ctx: ForwardContext, index: int) -> torch.Tensor:
        """G on the `index`-th sequence chunk `x`."""
        out = self.feedforward(self.norm(x), ctx, index)
        return ctx.dropout(out, self.dropout, self.layer, "feedforward_out", index)

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return map_chunks(lambda piece, i: self.chunk(piece, ctx, i), x, self.chunks, list(self.parameters()))


class Block(nn.Module):
    """One layer: an attention sublayer F and a feed-forward sublayer G."""

    def __init__(self, model: ModelConfig, attention: AttentionConfig, layer: int):
        super().__init__()
        self.attention = AttentionSublayer(model, attention, layer)
        self.feedforward = FeedForwardSublayer(model, layer)


class StandardStack(nn.Module):
    """Pre-norm residual blocks: x = x + F(x); x = x + G(x). Output width d_model."""

    def __init__(self, blocks: list[Block], d_model: int):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.out_width = d_model

    def forward(self, x: torch.Tensor, ctx: ForwardContext, key_padding_mask: torch.Tensor | None = None):
        for block in self.blocks:
            x = x + block.attention(x, ctx, key_padding_mask)
            x = x + block.feedforward(x, ctx)
        return x
