"""Reversible residual layers (paper section 3, eqs. 7-9; RevNet, Gomez et al. 2017).

A layer maps two streams (X1, X2) to (Y1, Y2):

    Y1 = X1 + F(X2)        F(x) = Dropout(Attention(LN(x)))       (eq. 7)
    Y2 = X2 + G(Y1)        G(x) = Dropout(FeedForward(LN(x)))     (eq. 8)

and its inputs follow from its outputs by subtracting the same residuals (eq. 9):

    X2 = Y2 - G(Y1)
    X1 = Y1 - F(X2)

so the backward pass can rebuild every layer's inputs from the last layer's outputs instead of
storing them: the activations kept for backward do not grow with depth. `ReversibleStack` starts
from X1 = X2 = the embedding and returns [Y1; Y2] (width 2 * d_model), which the model normalises
and feeds to the output layer (as trax and HF).

Exactness. The recomputation calls F and G with the same `ForwardContext` (seed, training flag)
as the forward, so dropout draws the same masks without touching the global RNG, and with the same
replay cache (a dict), so LSH attention reuses the forward's buckets and sort order instead of
rehashing a reconstructed input that may differ from the original in the last bits. The key padding
mask is passed to F at every call. The streams keep the dtype they come in with (fp32 under bf16
autocast: `x + f` promotes a bf16 residual to fp32), so reconstruction error stays at fp32 rounding
and does not grow with depth (docs/model.md, "Reversible layers"). The forward's cache tensors travel
through `save_for_backward`, so saved-tensor hooks (memory accounting, offloading) see them.

`layer.recompute=false` runs the same coupling under ordinary autograd (activations stored, no
custom backward): the reference the tests compare against, and a fallback.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import LayerConfig
from ..primitives.context import ForwardContext
from .blocks import Block
from .chunking import split
from .recompute import AutocastState, GradientSum, leaf, trainable


def reversible_forward(block: Block, x1: torch.Tensor, x2: torch.Tensor, ctx: ForwardContext, key_padding_mask):
    """Eqs. 7-8: (X1, X2) -> (Y1, Y2)."""
    y1 = x1 + block.attention(x2, ctx, key_padding_mask)
    y2 = x2 + block.feedforward(y1, ctx)
    return y1, y2


def reverse_and_grad(
    block: Block,
    y1: torch.Tensor,
    y2: torch.Tensor,
    dy1: torch.Tensor,
    dy2: torch.Tensor,
    ctx: ForwardContext,
    key_padding_mask: torch.Tensor | None,
    grads: GradientSum,
):
    """Eq. 9 with back-propagation: from a layer's outputs and their gradients, its inputs and
    theirs; the layer's parameter gradients are added to `grads`.

    G is recomputed chunk by chunk (`model.ff_chunks`, eq. 10: "the reverse computation and the
    backward pass are also chunked"), F once; each is back-propagated as soon as it is recomputed.
    """
    g_params = list(block.feedforward.parameters())
    f_params = list(block.attention.parameters())
    g_pieces, dy1_pieces = [], []
    for k, (y1_k, dy2_k) in enumerate(zip(split(y1, block.feedforward.chunks), split(dy2, block.feedforward.chunks))):
        with torch.enable_grad():
            start = leaf(y1_k)
            g_k = block.feedforward.chunk(start, ctx, k)
            (dy1_from_g,) = grads.vjp(g_k, dy2_k, [start], g_params)
        g_pieces.append(g_k.detach())
        dy1_pieces.append(dy1_from_g)
    with torch.no_grad():
        x2 = y2 - torch.cat(g_pieces, dim=1)  # X2 = Y2 - G(Y1)
        dy1 = dy1 + torch.cat(dy1_pieces, dim=1)  # Y1 feeds G as well as the output
    del g_pieces, dy1_pieces
    with torch.enable_grad():
        start = leaf(x2)
        f = block.attention(start, ctx, key_padding_mask)
        (dx2_from_f,) = grads.vjp(f, dy1, [start], f_params)
    with torch.no_grad():
        x1 = y1 - f.detach()  # X1 = Y1 - F(X2)
        dx2 = dy2 + dx2_from_f  # X2 feeds F as well as Y2
    return x1, x2, dy1, dx2  # dX1 = dY1: X1 only reaches Y1, with identity Jacobian


def _pack_cache(cache: dict) -> tuple[list, list[torch.Tensor]]:
    """The replay cache as (layout, tensors), so its tensors can go through save_for_backward."""
    layout, tensors = [], []
    for key, value in cache.items():
        if torch.is_tensor(value):
            layout.append((key, "tensor", 1))
            tensors.append(value)
        elif isinstance(value, (tuple, list)) and value and all(torch.is_tensor(v) for v in value):
            layout.append((key, type(value), len(value)))
            tensors.extend(value)
        else:
            layout.append((key, "value", value))
    return layout, tensors


def _unpack_cache(layout: list, tensors: tuple[torch.Tensor, ...]) -> dict:
    cache, i = {}, 0
    for key, kind, n in layout:
        if kind == "value":
            cache[key] = n
        elif kind == "tensor":
            cache[key], i = tensors[i], i + 1
        else:
            cache[key], i = kind(tensors[i : i + n]), i + n
    return cache


class _ReversibleFunction(torch.autograd.Function):
    """The whole stack as one autograd node that saves only its output (and the replay cache)."""

    @staticmethod
    def forward(fctx, x: torch.Tensor, key_padding_mask, blocks, ctx: ForwardContext, *params: torch.Tensor):
        fctx.blocks, fctx.ctx, fctx.params = blocks, ctx, params
        fctx.autocast = AutocastState.capture(x.device)
        x1 = x2 = x
        for block in blocks:  # grad mode is off inside Function.forward: nothing is kept
            x1, x2 = reversible_forward(block, x1, x2, ctx, key_padding_mask)
        out = torch.cat([x1, x2], dim=-1)
        fctx.cache_layout, cache_tensors = _pack_cache(ctx.cache)
        fctx.save_for_backward(out, key_padding_mask, *cache_tensors)
        return out

    @staticmethod
    def backward(fctx, grad_out: torch.Tensor):
        out, key_padding_mask, *cache_tensors = fctx.saved_tensors
        ctx = dataclasses.replace(fctx.ctx, cache=_unpack_cache(fctx.cache_layout, cache_tensors))
        grads = GradientSum(fctx.params)
        y1, y2 = out.chunk(2, dim=-1)
        dy1, dy2 = grad_out.chunk(2, dim=-1)
        with fctx.autocast.restore():
            for block in reversed(fctx.blocks):
                y1, y2, dy1, dy2 = reverse_and_grad(block, y1, y2, dy1, dy2, ctx, key_padding_mask, grads)
        grad_x = dy1 + dy2  # X1 = X2 = x
        return (grad_x, None, None, None, *grads.result())


class ReversibleStack(nn.Module):
    """Reversible layers over two copies of the input; output [Y1; Y2], width 2 * d_model."""

    def __init__(self, blocks: list[Block], d_model: int, layer: LayerConfig | None = None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.out_width = 2 * d_model
        self.recompute = bool(getattr(layer, "recompute", True))

    def forward(self, x: torch.Tensor, ctx: ForwardContext, key_padding_mask: torch.Tensor | None = None):
        params = trainable(list(self.parameters()))
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or bool(params))
        if self.recompute and needs_grad:
            replay = dataclasses.replace(ctx, cache={})  # filled by the forward, read by the backward
            return _ReversibleFunction.apply(x, key_padding_mask, list(self.blocks), replay, *params)
        x1 = x2 = x
        for block in self.blocks:
            x1, x2 = reversible_forward(block, x1, x2, ctx, key_padding_mask)
        return torch.cat([x1, x2], dim=-1)
