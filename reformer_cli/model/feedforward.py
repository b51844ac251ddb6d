"""The position-wise feed-forward layer, computed in chunks along the sequence (paper eq. 10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .context import ForwardContext

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    """Dense(d_ff) -> activation -> dropout -> Dense(d_model), applied to `chunks` sequence slices
    one at a time: each position is independent, so chunking "only affects the implementation;
    it is numerically identical" (paper section 3)."""

    def __init__(self, d_model: int, d_ff: int, activation: str, dropout: float, chunks: int, layer: int):
        super().__init__()
        self.w_in = nn.Linear(d_model, d_ff)
        self.w_out = nn.Linear(d_ff, d_model)
        self.activation = ACTIVATIONS[activation]
        self.dropout, self.chunks, self.layer = dropout, chunks, layer

    def _chunk(self, x: torch.Tensor, ctx: ForwardContext, chunk: int) -> torch.Tensor:
        hidden = ctx.dropout(self.activation(self.w_in(x)), self.dropout, self.layer, "ff_hidden", chunk)
        return self.w_out(hidden)

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        if self.chunks == 1:
            return self._chunk(x, ctx, 0)
        pieces = x.chunk(self.chunks, dim=1)
        return torch.cat([self._chunk(piece, ctx, i) for i, piece in enumerate(pieces)], dim=1)
