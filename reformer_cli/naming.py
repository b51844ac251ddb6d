"""How runs are named, without torch (so that `reformer runs` and the folder a run is given before
Hydra starts need not import it): the attention's short label (`lsh-4`, `full-sharedqk-noself`) and
a run's default name (`synthetic-lsh-4-standard-seed0`). Runs and evaluations use the same label."""

from __future__ import annotations

from typing import Any

from .attention.per_layer import layer_attentions
from .attention.registry import spec_of


def attention_label(attention: Any) -> str:
    """A short name for tables and run names, from the spec of the attention's type
    (`lsh-8`, `full-sharedqk`; attention/specs/); ConfigError (one line) for an unknown type."""
    return spec_of(attention).label(attention)


def model_attention_label(cfg: Any, attention: Any = None) -> str:
    """The label of `cfg.attention`, or with `model.attn_layers` the labels of the layers'
    attentions joined by `+` in order of first use (`local-64+lsh-2`). `attention` (an evaluation's)
    replaces `cfg.attention` in the layers that ran it, as `ReformerLM.set_attention` does; the
    other layers keep theirs (`local-64+full` evaluated under `attention=lsh`: `local-64+lsh-2`)."""
    trained = cfg.attention
    if cfg.model.get("attn_layers") is None:
        return attention_label(trained if attention is None else attention)
    layers = layer_attentions(cfg.model, trained)
    if attention is not None:
        layers = [attention if layer is trained else layer for layer in layers]
    return "+".join(dict.fromkeys(attention_label(a) for a in layers))


def default_run_name(cfg: Any) -> str:
    """`<task>-<attention label>-<layer>-seed<seed>`, e.g. `synthetic-lsh-4-standard-seed0`
    (`synthetic-local-64+lsh-2-standard-seed0` with `model.attn_layers=[local,lsh]`)."""
    return f"{cfg.task.name}-{model_attention_label(cfg)}-{cfg.layer.name}-seed{cfg.seed}"
