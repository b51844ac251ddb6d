"""The interface of an attention core: the parameter-free part of self-attention.

A core maps per-head queries/keys/values `[batch, heads, length, d_head]` to outputs of the same
shape. For shared-QK cores `k` is None and `q` holds the shared query/key vectors. Cores hold no
weights, so a trained model can be evaluated under another attention by swapping its cores
(`ReformerLM.set_attention`), as the paper's Table 2 does. The implementations are in
`reformer_cli.attention` (full and LSH); the model only sees this interface.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .context import ForwardContext

# Drops attention probabilities (a replayable dropout from the forward context), or None.
ProbsDropout = Optional[Callable[[torch.Tensor], torch.Tensor]]


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
    def probs_dropout(ctx: ForwardContext, p: float, layer: int) -> ProbsDropout:
        """A replayable dropout on attention probabilities, or None when inactive."""
        if not ctx.training or p == 0.0:
            return None
        return lambda probs: ctx.dropout(probs, p, layer, "attention_probs")
