"""Axial positional embeddings, as trax's AxialPositionalEncoding (notes/paper.md 2.12).

A sequence is laid out on a grid of `shape` (row-major: the last axis varies fastest; a
sequence shorter than prod(shape) uses the first positions). Axis i has one learned table of shape `(shape[i], dims[i])`, initialised N(0, 1)
as in trax (HF: axial_norm_std = 1.0). The embedding of the position with grid coordinates
(c_0, ..., c_k) is the concatenation [T_0[c_0]; ...; T_k[c_k]] (width sum(dims) = d_model), added
to the token embedding. Parameters: sum(shape[i] * dims[i]) instead of n * d_model (for 65,536
positions of width 1024 as [128, 512] x [256, 768]: 0.43M instead of 67M).

`model.axial_shape` / `model.axial_dims`, the rule used when they are null and the checks
(prod(shape) >= task.seq_len, sum(dims) == d_model) are in `config.axial_layout`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import axial_layout
from ..errors import UserError


class AxialPositions(nn.Module):
    def __init__(self, shape: list[int], dims: list[int]):
        super().__init__()
        if len(shape) != len(dims):
            raise UserError(f"axial positions: shape {shape} and dims {dims} have different numbers of axes")
        self.shape, self.dims = list(shape), list(dims)
        self.tables = nn.ParameterList(nn.Parameter(torch.randn(n, d)) for n, d in zip(shape, dims))
        self.length = 1
        for n in shape:
            self.length *= n

    @classmethod
    def from_config(cls, model: Any, seq_len: int) -> "AxialPositions":
        return cls(*axial_layout(model, seq_len))

    def table(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The full [prod(shape), sum(dims)] embedding: per-axis tables broadcast over the grid,
        concatenated on the feature axis, flattened row-major."""
        axes = len(self.shape)
        parts = []
        for i, table in enumerate(self.tables):
            view = [1] * axes + [self.dims[i]]
            view[i] = self.shape[i]
            parts.append(table.to(dtype or table.dtype).view(view).expand(*self.shape, self.dims[i]))
        return torch.cat(parts, dim=-1).reshape(self.length, sum(self.dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.length:
            raise UserError(
                f"sequence of length {length} is longer than the axial positions' {self.length}"
                f" (model.axial_shape={self.shape})"
            )
        return x + self.table(x.dtype)[:length]
