"""Position information added to the token embeddings."""

from __future__ import annotations

import torch
from torch import nn


class LearnedPositions(nn.Module):
    """One learned vector per absolute position, added to the embedding."""

    def __init__(self, max_len: int, d_model: int, init_std: float = 0.02):
        super().__init__()
        self.table = nn.Parameter(torch.randn(max_len, d_model) * init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]].to(x.dtype)


class NoPositions(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
