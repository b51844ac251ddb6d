"""Full attention over the whole sequence: the paper's baseline, in its two forms.

* `full_attention`: standard scaled dot-product attention with separate Q and K,
  softmax(q k^T / sqrt(d)) v, through PyTorch SDPA (its fastest backend on GPU).
* `shared_qk_full_attention`: exactly the logits LSH attention uses (docs/lsh-attention.md, "Logits and masks"):
  q_i . k_j / ||k_j||, self logit replaced by -1e5, so a model can be trained with one attention
  and evaluated with the other (Table 2). With one bucket and one chunk covering the sequence, LSH
  attention equals this function. Two evaluation diagnostics for Table 2's "full attention"
  column change it: `keys="raw"` computes q_i . q_j / sqrt(d) (standard scaled dot-product
  attention fed the shared projection as both q and k, keys not normalised), and
  `self_mask_value` replaces the self logit by another value (`self_mask=False`: left in place).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import MASK_VALUE, SELF_MASK_VALUE, ProbsDropout, unit_norm_keys


def _allowed(length: int, device: torch.device, causal: bool, key_padding_mask: torch.Tensor | None):
    """Boolean [batch or 1, 1, length, length] of (query, key) pairs that may attend, or None."""
    allowed = None
    if causal:
        pos = torch.arange(length, device=device)
        allowed = (pos[None, :] <= pos[:, None])[None, None]
    if key_padding_mask is not None:
        keys = key_padding_mask[:, None, None, :].bool()
        allowed = keys if allowed is None else allowed & keys
    return allowed


def full_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    key_padding_mask: torch.Tensor | None = None,
    probs_dropout: ProbsDropout = None,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over `[batch, heads, length, d_head]` inputs."""
    if probs_dropout is None:
        if key_padding_mask is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        mask = _allowed(q.shape[-2], q.device, causal, key_padding_mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    logits = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    allowed = _allowed(q.shape[-2], q.device, causal, key_padding_mask)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, MASK_VALUE)
    probs = probs_dropout(torch.softmax(logits.float(), dim=-1).to(v.dtype))
    return torch.matmul(probs, v)


# How shared-QK full attention forms its keys from the shared projection.
SHARED_QK_KEYS = ("unit", "raw")
# How the self mask acts on a query's own logit: replace it by the value, or add the value to it.
SELF_MASK_MODES = ("replace", "add")


def shared_qk_logits(
    qk: torch.Tensor,
    causal: bool,
    key_padding_mask: torch.Tensor | None,
    self_mask: bool = True,
    *,
    keys: str = "unit",
    self_mask_value: float = SELF_MASK_VALUE,
    self_mask_mode: str = "replace",
) -> torch.Tensor:
    """[batch, heads, length, length] logits of docs/lsh-attention.md, "Logits and masks", with all masks applied.

    keys: "unit" q_i . k_j / ||k_j|| (the LSH logits); "raw" q_i . q_j / sqrt(d_head) (scaled
    dot-product attention with k = q). `self_mask=False` leaves each position's own logit in place
    (||q_i|| with unit keys, ||q_i||^2 / sqrt(d) with raw ones); otherwise it is replaced by
    `self_mask_value` (`self_mask_mode="replace"`) or has it added (`"add"`: the authors' 2019
    memory-efficient layer subtracted 32 from the self logit)."""
    length = qk.shape[-2]
    if keys == "unit":
        logits = torch.matmul(qk, unit_norm_keys(qk).transpose(-1, -2))
    elif keys == "raw":
        logits = torch.matmul(qk, qk.transpose(-1, -2)) * qk.shape[-1] ** -0.5
    else:
        raise ValueError(f"keys={keys!r} is not one of {SHARED_QK_KEYS}")
    if self_mask:
        eye = torch.eye(length, dtype=torch.bool, device=qk.device)
        if self_mask_mode == "replace":
            logits = logits.masked_fill(eye, self_mask_value)
        elif self_mask_mode == "add":
            logits = logits + eye.to(logits.dtype) * self_mask_value
        else:
            raise ValueError(f"self_mask_mode={self_mask_mode!r} is not one of {SELF_MASK_MODES}")
    allowed = _allowed(length, qk.device, causal, key_padding_mask)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, MASK_VALUE)
    return logits


def shared_qk_full_attention(
    qk: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    key_padding_mask: torch.Tensor | None = None,
    probs_dropout: ProbsDropout = None,
    self_mask: bool = True,
    keys: str = "unit",
    self_mask_value: float = SELF_MASK_VALUE,
    self_mask_mode: str = "replace",
) -> torch.Tensor:
    """Full attention with shared QK: softmax over q_i . k_j / ||k_j|| with the self mask (unless
    `self_mask=False`); `keys`, `self_mask_value` and `self_mask_mode` as in `shared_qk_logits`.

    Computed in at least fp32 (autocast off): this is the exact baseline LSH is compared with.
    """
    dtype = torch.promote_types(qk.dtype, torch.float32)
    with torch.autocast(qk.device.type, enabled=False):
        logits = shared_qk_logits(qk.to(dtype), causal, key_padding_mask, self_mask, keys=keys,
                                  self_mask_value=self_mask_value, self_mask_mode=self_mask_mode)
        probs = torch.softmax(logits, dim=-1)
        if probs_dropout is not None:
            probs = probs_dropout(probs)
        return torch.matmul(probs, v.to(dtype)).to(v.dtype)
