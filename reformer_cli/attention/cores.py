"""Attention cores: the parameter-free part of self-attention, chosen by the `attention` config.

A core maps per-head queries/keys/values `[batch, heads, length, d_head]` to outputs of the same
shape. For shared-QK cores `k` is None and `q` holds the shared query/key vectors. Cores hold no
weights, so a trained model can be evaluated under another attention by swapping its cores
(`ReformerLM.set_attention`), as the paper's Table 2 does.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..model.context import ForwardContext
from .full import full_attention, shared_qk_full_attention


class AttentionCore:
    shared_qk: bool = True

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor | None,
        v: torch.Tensor,
        ctx: ForwardContext,
        layer: int,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def probs_dropout(ctx: ForwardContext, p: float, layer: int):
        """A replayable dropout on attention probabilities, or None when inactive."""
        if not ctx.training or p == 0.0:
            return None
        return lambda probs: ctx.dropout(probs, p, layer, "attention_probs")


class FullAttentionCore(AttentionCore):
    def __init__(self, cfg: Any, seq_len: int):
        self.shared_qk = bool(cfg.shared_qk)
        self.causal = bool(cfg.causal)
        self.dropout = float(cfg.dropout)
        self.self_mask = bool(cfg.self_mask)
        self.self_mask_value = float(cfg.self_mask_value)
        self.self_mask_mode = str(cfg.self_mask_mode)
        self.keys = str(cfg.shared_qk_keys)

    def __call__(self, q, k, v, ctx, layer, key_padding_mask=None):
        dropout = self.probs_dropout(ctx, self.dropout, layer)
        if self.shared_qk:
            return shared_qk_full_attention(
                q, v, causal=self.causal, key_padding_mask=key_padding_mask, probs_dropout=dropout,
                self_mask=self.self_mask, keys=self.keys, self_mask_value=self.self_mask_value,
                self_mask_mode=self.self_mask_mode,
            )
        return full_attention(q, k, v, causal=self.causal, key_padding_mask=key_padding_mask, probs_dropout=dropout)


def _lsh_core(cfg: Any, seq_len: int) -> AttentionCore:
    from .lsh_core import LSHAttentionCore  # the LSH issue provides it

    return LSHAttentionCore(cfg, seq_len)


CORES = {"full": FullAttentionCore, "lsh": _lsh_core}


def build_attention_core(cfg: Any, seq_len: int) -> AttentionCore:
    if cfg.name not in CORES:
        raise ConfigError(f"attention '{cfg.name}' is not available (available: {', '.join(CORES)})")
    return CORES[cfg.name](cfg, seq_len)
