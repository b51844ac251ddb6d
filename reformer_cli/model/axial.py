"""Axial positional embeddings, as trax's AxialPositionalEncoding (docs/model.md, "Axial positions").

A sequence is laid out on a grid of `shape` (row-major: the last axis varies fastest; a
sequence shorter than prod(shape) uses the first positions). Axis i has one learned table of shape `(shape[i], dims[i])`, initialised N(0, 1)
as in trax (HF: axial_norm_std = 1.0). The embedding of the position with grid coordinates
(c_0, ..., c_k) is the concatenation [T_0[c_0]; ...; T_k[c_k]] (width sum(dims) = d_model), added
to the token embedding. Parameters: sum(shape[i] * dims[i]) instead of n * d_model (for 65,536
positions of width 1024 as [128, 512] x [256, 768]: 0.43M instead of 67M).

`model.axial_shape` / `model.axial_dims` give the layout; what is left null is derived here
(`axial_layout`). The config's checks on it (prod(shape) >= task.seq_len, sum(dims) == d_model)
are `config.validate_axial`, run once when the config is validated: the model trusts its config.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import UserError


def _two_axis_shape(seq_len: int) -> list[int]:
    """[a, seq_len // a] with a the largest divisor of seq_len not above sqrt(seq_len)."""
    a = max(d for d in range(1, int(seq_len**0.5) + 1) if seq_len % d == 0)
    return [a, seq_len // a]


def _even_split(d_model: int, axes: int) -> list[int]:
    """d_model split into `axes` equal parts; the last takes the remainder."""
    part = d_model // axes
    return [part] * (axes - 1) + [d_model - part * (axes - 1)]


def axial_layout(model: ModelConfig, seq_len: int) -> tuple[list[int], list[int]]:
    """The axial positions' (shape, dims) of a validated config (`config.validate_axial`).

    `model.axial_shape` left null: two axes [a, seq_len / a], a the largest divisor of seq_len not
    above its square root (65536 -> [256, 256], 1024 -> [32, 32], 12288 -> [96, 128]).
    `model.axial_dims` left null: d_model split evenly over the axes (the last takes any remainder).
    """
    shape = _two_axis_shape(seq_len) if model.axial_shape is None else [int(n) for n in model.axial_shape]
    dims = _even_split(model.d_model, len(shape)) if model.axial_dims is None else [int(n) for n in model.axial_dims]
    return shape, dims


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
    def from_config(cls, model: ModelConfig, seq_len: int) -> "AxialPositions":
        return cls(*axial_layout(model, seq_len))

    def table(self, length: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The [length, sum(dims)] embedding of the grid's first `length` positions (default: all of
        them): each position's row-major coordinates pick a row of every axis's table, concatenated on
        the feature axis. Only those rows are built, so a grid far longer than the sequence costs no
        memory."""
        position = torch.arange(self.length if length is None else length, device=self.tables[0].device)
        parts, stride = [], self.length
        for n, table in zip(self.shape, self.tables):
            stride //= n  # positions per step of this axis (the last axis varies fastest)
            parts.append(table.to(dtype or table.dtype)[position // stride % n])
        return torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.length:
            raise UserError(
                f"sequence of length {length} is longer than the axial positions' {self.length}"
                f" (model.axial_shape={self.shape})"
            )
        return x + self.table(length, x.dtype)
