"""The attention weight each query puts on its own position: a diagnostic for Table 2.

A shared-QK query's dot product with its own key is its largest (q . q/|q| = |q|), so whether
the self logit is masked decides whether a model can look anywhere but at itself. Evaluating a
model "with full attention" as the paper's Table 2 does, the weight on the diagonal tells which
of the candidate full attentions a model was evaluated under (docs/table2-full-column.md).

Every attention core is linear in its values, out_i = sum_j p_ij v_j (LSH's merged rounds and the
duplicate correction included), so p_ii is read off exactly by probing the core with one-hot
values: ceil(length / d_head) extra calls, each giving d_head positions their own weight.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def self_weights(core, q, k, v, ctx, layer, key_padding_mask=None) -> torch.Tensor:
    """p_ii `[batch, heads, length]` of `core` for these queries/keys (v gives shape and dtype)."""
    b, h, length, d = v.shape
    weights = torch.zeros(b, h, length, dtype=torch.float32, device=v.device)
    for start in range(0, length, d):
        block = torch.arange(start, min(start + d, length), device=v.device)
        probe = torch.zeros_like(v)
        probe[:, :, block, block - start] = 1  # position j carries the unit vector e_(j - start)
        out = core(q, k, probe, ctx, layer, key_padding_mask)
        weights[:, :, block] = out[:, :, block, block - start].float()
    return weights
