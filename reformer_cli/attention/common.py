"""Pieces every attention shares: unit-norm keys, the mask values, heads split and merged."""

from __future__ import annotations

import torch

from ..primitives.attention_core import ProbsDropout
from ..primitives.attention_settings import SELF_MASK_VALUE

__all__ = ["KEY_NORM_EPS", "MASK_VALUE", "ProbsDropout", "SELF_MASK_VALUE", "merge_heads", "split_heads",
           "unit_norm_keys"]
# Excluded keys (causal, padding, outside the attended chunks). Finite, so a row never becomes
# all -inf (which would give NaN), yet exp(MASK_VALUE - max) underflows to exactly 0 in fp32:
# excluded keys get exactly zero weight and exactly zero gradient.
MASK_VALUE = -1e9
# Added under the square root when normalising keys, only so that a zero vector gives a zero key
# instead of NaN; small enough not to change any other key (fp32 and wider).
KEY_NORM_EPS = 1e-30


def unit_norm_keys(qk: torch.Tensor) -> torch.Tensor:
    """k_j = qk_j / ||qk_j|| (paper section 2 'Shared-QK'; trax and HF give the same unit keys).

    Computed in at least fp32 and returned in that precision."""
    x = qk.to(torch.promote_types(qk.dtype, torch.float32))
    return x * torch.rsqrt(x.pow(2).sum(dim=-1, keepdim=True) + KEY_NORM_EPS)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[batch, length, heads * d_head] -> [batch, heads, length, d_head]."""
    b, length, _ = x.shape
    return x.view(b, length, n_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[batch, heads, length, d_head] -> [batch, length, heads * d_head]."""
    b, h, length, d = x.shape
    return x.transpose(1, 2).reshape(b, length, h * d)
