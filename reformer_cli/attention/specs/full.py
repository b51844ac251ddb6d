"""`attention=full`: full attention, the paper's baseline (attention/full.py computes it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import ConfigError
from ...primitives.attention_settings import SELF_MASK_VALUE
from ..spec import AttentionSpec, MemoryTerm, choice, weights

FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max


@dataclass
class FullAttentionConfig:
    """Full attention: the baseline. Separate Q and K (standard scaled dot-product) by default;
    `shared_qk: true` uses exactly the LSH logits (docs/lsh-attention.md, "Logits and masks": unit-norm keys,
    unscaled queries, self mask) so one model can be evaluated under both attentions."""

    name: str = "full"
    shared_qk: bool = False
    causal: bool = True
    dropout: float = 0.0  # on attention probabilities
    # With shared QK only: a query's own logit is replaced by self_mask_value (docs/lsh-attention.md,
    # "Logits and masks"; trax and HF always do so, with -1e5). false lets a position attend to itself, which
    # with unit-norm keys it always prefers (q . q/|q| = |q|): a diagnostic for Table 2.
    self_mask: bool = True
    self_mask_value: float = SELF_MASK_VALUE
    # replace: the self logit becomes self_mask_value; add: self_mask_value is added to it (with
    # -32: what the authors' memory-efficient attention did until late September 2019)
    self_mask_mode: str = "replace"
    # With shared QK only: unit (k_j = q_j / |q_j|, queries unscaled: the LSH logits) | raw
    # (k_j = q_j and logits scaled by 1/sqrt(d_head): standard dot-product attention fed the shared
    # projection, which the paper's authors' full-attention layer computed when its own share_qk
    # flag was not set; an evaluation diagnostic for Table 2, docs/table2-full-column.md).
    shared_qk_keys: str = "unit"


def validate(attention: Any, seq_len: int) -> None:
    choice("attention.shared_qk_keys", attention.shared_qk_keys, ("unit", "raw"))
    if not math.isfinite(attention.self_mask_value) or abs(attention.self_mask_value) > FLOAT32_MAX:
        raise ConfigError(
            f"attention.self_mask_value={attention.self_mask_value!r} must be a finite float32 number"
            f" (at most {FLOAT32_MAX:.6g} in magnitude)"
        )
    choice("attention.self_mask_mode", attention.self_mask_mode, ("replace", "add"))
    shared_only = {"self_mask=false": not attention.self_mask,
                   f"self_mask_mode={attention.self_mask_mode}": attention.self_mask_mode != "replace",
                   f"shared_qk_keys={attention.shared_qk_keys}": attention.shared_qk_keys != "unit",
                   f"self_mask_value={attention.self_mask_value}":
                       attention.self_mask_value != FullAttentionConfig.self_mask_value}
    changed = [setting for setting, differs in shared_only.items() if differs]
    if changed and not attention.shared_qk:
        raise ConfigError(
            f"attention.{changed[0]} applies to shared-QK full attention only (attention.shared_qk=true);"
            " with separate Q and K no logit is masked for being a position's own"
        )


def label(attention: Mapping) -> str:
    """`full` (separate Q and K), `full-sharedqk`, and for shared-QK diagnostics the parts that
    differ: `-raw` (keys q/sqrt(d)), `-noself` (self logit kept), `-self32` (self logit -32)."""
    if not attention.get("shared_qk"):
        return "full"
    text = "full-sharedqk"
    if attention.get("shared_qk_keys", "unit") != "unit":
        text += f"-{attention['shared_qk_keys']}"
    if not attention.get("self_mask", True):
        text += "-noself"
    elif attention.get("self_mask_mode", "replace") == "add":
        text += f"-selfadd{float(attention['self_mask_value']):g}"
    elif float(attention.get("self_mask_value", SELF_MASK_VALUE)) != SELF_MASK_VALUE:
        text += f"-self{float(attention['self_mask_value']):g}"
    return text


def build_core(attention: Any) -> Any:
    from ..cores import FullAttentionCore

    return FullAttentionCore(attention)


def memory_per_query(attention: Any, seq_len: int) -> list[MemoryTerm]:
    """A weight per query, head and key, where it builds the batch x heads x seq_len^2 weights: with
    shared QK or attention dropout only (attention/full.py; otherwise PyTorch's SDPA computes it in
    memory linear in seq_len)."""
    if not (bool(attention.get("shared_qk", False)) or float(attention.get("dropout", 0.0) or 0.0) > 0):
        return []
    return [weights(seq_len, "full attention's weights, trainer.batch_size x model.n_heads x task.seq_len^2"
                             " (reduce trainer.batch_size or task.seq_len, or use an attention over chunks)")]


SPEC = AttentionSpec(
    name="full",
    schema=FullAttentionConfig,
    build_core=build_core,
    validate=validate,
    label=label,
    shares_qk=lambda attention: bool(attention.get("shared_qk", False)),
    legacy={"self_mask": True, "self_mask_value": SELF_MASK_VALUE, "self_mask_mode": "replace",
            "shared_qk_keys": "unit"},
    quadratic_memory=True,
    memory_per_query=memory_per_query,
    baseline=True,
    describe=lambda attention: "full, shared-QK" if attention.get("shared_qk") else "full",
)
