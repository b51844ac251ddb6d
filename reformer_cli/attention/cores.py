"""The attention cores the `attention` config selects: full attention here, LSH in lsh_core.py,
local attention in local.py.

Each implements `primitives.attention_core.AttentionCore`; `registry.build_attention_core` builds
the one the spec of the config's `name` names.
"""

from __future__ import annotations

from typing import Any

from ..primitives.attention_core import AttentionCore
from .full import full_attention, shared_qk_full_attention

# An `attention` config: the schema of its type's spec (FullAttentionConfig, LSHAttentionConfig, ...)
AttentionConfig = Any


class FullAttentionCore(AttentionCore):
    """Full attention configured by an `attention=full` config: separate Q and K, or shared QK."""

    def __init__(self, attention: AttentionConfig):  # specs/full.py: FullAttentionConfig
        self.shared_qk = bool(attention.shared_qk)
        self.causal = bool(attention.causal)
        self.dropout = float(attention.dropout)
        self.self_mask = bool(attention.self_mask)
        self.self_mask_value = float(attention.self_mask_value)
        self.self_mask_mode = str(attention.self_mask_mode)
        self.keys = str(attention.shared_qk_keys)

    def __call__(self, q, k, v, ctx, layer, key_padding_mask=None):
        dropout = self.probs_dropout(ctx, self.dropout, layer)
        if self.shared_qk:
            return shared_qk_full_attention(
                q, v, causal=self.causal, key_padding_mask=key_padding_mask, probs_dropout=dropout,
                self_mask=self.self_mask, keys=self.keys, self_mask_value=self.self_mask_value,
                self_mask_mode=self.self_mask_mode,
            )
        return full_attention(q, k, v, causal=self.causal, key_padding_mask=key_padding_mask, probs_dropout=dropout)

