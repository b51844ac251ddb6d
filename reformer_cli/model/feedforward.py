"""The position-wise feed-forward layer (the paper's FeedForward; chunked by its sublayer, eq. 10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..primitives.context import ForwardContext

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    """Dense(d_ff) -> activation -> dropout -> Dense(d_model) on each position independently.

    `chunk` is the index of the sequence chunk `x` is (0 when unchunked): it keys the dropout mask,
    so a recomputation of the same chunk draws the same mask. Chunking itself lives in
    `FeedForwardSublayer` (blocks.py), which chunks LN, this layer and the output dropout together.
    """

    def __init__(self, d_model: int, d_ff: int, activation: str, dropout: float, layer: int):
        super().__init__()
        self.w_in = nn.Linear(d_model, d_ff)
        self.w_out = nn.Linear(d_ff, d_model)
        self.activation = ACTIVATIONS[activation]
        self.dropout, self.layer = dropout, layer

    def forward(self, x: torch.Tensor, ctx: ForwardContext, chunk: int = 0) -> torch.Tensor:
        hidden = ctx.dropout(self.activation(self.w_in(x)), self.dropout, self.layer, "ff_hidden", chunk)
        return self.w_out(hidden)
