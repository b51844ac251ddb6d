"""How runs are named, without torch (so that `reformer runs` and the folder a run is given before
Hydra starts need not import it): the attention's short label (`lsh-4`, `full-sharedqk-noself`) and
a run's default name (`synthetic-lsh-4-standard-seed0`). Runs and evaluations use the same label."""

from __future__ import annotations

from typing import Any


def attention_label(attention: Any) -> str:
    """A short name for tables: `lsh-8` (the paper's LSH, 8 rounds), `lsh-8-across-nodedup` (trax v2
    / HF), `full` (separate Q and K), `full-sharedqk`, and for shared-QK diagnostics the parts that
    differ: `-raw` (keys q/sqrt(d)), `-noself` (self logit kept), `-self32` (self logit -32)."""
    if attention["name"] == "lsh":
        label = f"lsh-{attention['n_rounds']}"
        if attention.get("attend_across_buckets", False):
            label += "-across"
        if not attention.get("dedup", True):
            label += "-nodedup"
        return label
    if not attention.get("shared_qk"):
        return "full"
    label = "full-sharedqk"
    if attention.get("shared_qk_keys", "unit") != "unit":
        label += f"-{attention['shared_qk_keys']}"
    if not attention.get("self_mask", True):
        label += "-noself"
    elif attention.get("self_mask_mode", "replace") == "add":
        label += f"-selfadd{float(attention['self_mask_value']):g}"
    elif float(attention.get("self_mask_value", -1e5)) != -1e5:
        label += f"-self{float(attention['self_mask_value']):g}"
    return label


def default_run_name(cfg: Any) -> str:
    """`<task>-<attention label>-<layer>-seed<seed>`, e.g. `synthetic-lsh-4-standard-seed0`."""
    return f"{cfg.task.name}-{attention_label(cfg.attention)}-{cfg.layer.name}-seed{cfg.seed}"
