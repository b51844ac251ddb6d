"""Multi-head self-attention: projections around an attention core (the paper's Attention(X))."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..primitives.attention_core import AttentionCore
from ..primitives.context import ForwardContext
from .common import merge_heads, split_heads
from .cores import AttentionConfig
from .registry import build_attention_core
from .self_weight import self_weights


class SelfAttention(nn.Module):
    """Q/K/V projections (one shared QK projection when the attention shares QK), a core, and the
    output projection. Projections have no bias, as in trax."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, attention: AttentionConfig, layer: int):
        super().__init__()
        self.n_heads, self.d_head, self.layer = n_heads, d_head, layer
        self.core: AttentionCore = build_attention_core(attention)
        self.shared_qk = self.core.shared_qk
        inner = n_heads * d_head
        if self.shared_qk:
            self.to_qk = nn.Linear(d_model, inner, bias=False)
        else:
            self.to_q = nn.Linear(d_model, inner, bias=False)
            self.to_k = nn.Linear(d_model, inner, bias=False)
        self.to_v = nn.Linear(d_model, inner, bias=False)
        self.to_out = nn.Linear(inner, d_model, bias=False)

    def set_core(self, attention: AttentionConfig) -> None:
        """Swap the attention (e.g. evaluate a full-attention model with LSH); weights untouched."""
        core = build_attention_core(attention)
        if core.shared_qk != self.shared_qk:
            trained = "shared-QK" if self.shared_qk else "separate Q and K"
            hint = (
                "train full attention with attention.shared_qk=true to evaluate it under LSH"
                if core.shared_qk
                else "evaluate it with attention=full attention.shared_qk=true"
            )
            raise UserError(
                f"attention '{attention.name}' needs {'shared-QK' if core.shared_qk else 'separate Q and K'}"
                f" weights but this model was trained with {trained} ({hint})"
            )
        self.core = core

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Queries, keys (None with shared QK: the core derives them) and values, split into heads."""
        if self.shared_qk:
            q, k = split_heads(self.to_qk(x), self.n_heads), None
        else:
            q = split_heads(self.to_q(x), self.n_heads)
            k = split_heads(self.to_k(x), self.n_heads)
        return q, k, split_heads(self.to_v(x), self.n_heads)

    def forward(
        self, x: torch.Tensor, ctx: ForwardContext, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        q, k, v = self.project(x)
        out = self.core(q, k, v, ctx, self.layer, key_padding_mask)
        if ctx.diagnostics is not None and "self_weight" in ctx.diagnostics:
            weights = self_weights(self.core, q, k, v, ctx, self.layer, key_padding_mask)
            ctx.diagnostics["self_weight"].append(weights.mean(dim=1))  # the heads' mean
        return self.to_out(merge_heads(out))
