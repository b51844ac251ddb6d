"""Which attention each layer runs: `model.attn_layers` (docs/model.md, "Attention types and attention per layer").

`model.attn_layers: null` (the default): every layer runs `attention`. A list of attention names
(`[local, lsh]`) chooses one per layer and is cycled over `model.n_layers` when shorter, as
transformers' `attn_layers` is (`[local, lsh]` over 4 layers: local, lsh, local, lsh); longer than
`n_layers` is an error. A layer of the type `attention=` selects runs `attention` itself, with
every override given on it; a layer of another type runs that type's defaults (its schema, as
`attention=<type>` would give them) with `attention.causal`, updated by `model.attn_settings.<type>`
(`+model.attn_settings.local.chunk_length=128`, a key Hydra adds with `+`). No torch here: the config checks it.
"""

from __future__ import annotations

from typing import Any


from ..errors import ConfigError
from .registry import spec_of


def _settings_of(model: Any, name: str) -> dict:
    from omegaconf import OmegaConf  # lazy: the GPU machine's benchmarks run without omegaconf

    settings = model.get("attn_settings") if hasattr(model, "get") else getattr(model, "attn_settings", None)
    if not settings:
        return {}
    found = settings.get(name) if hasattr(settings, "get") else None
    return {} if found is None else dict(OmegaConf.to_container(found) if OmegaConf.is_config(found) else found)


def layer_names(model: Any, attention: Any) -> list[str]:
    """The attention type of each of the model's layers."""
    n_layers = int(model.n_layers)
    names = model.get("attn_layers") if hasattr(model, "get") else getattr(model, "attn_layers", None)
    if names is None:
        return [str(attention.name)] * n_layers
    names = [str(name) for name in names]
    if not names or len(names) > n_layers:
        raise ConfigError(f"model.attn_layers={names} must name 1 to model.n_layers={n_layers} attentions"
                          " (cycled over the layers when shorter)")
    return [names[i % len(names)] for i in range(n_layers)]


def layer_attentions(model: Any, attention: Any) -> list[Any]:
    """The attention config of each layer (OmegaConf nodes of their types' schemas); ConfigError
    (one line) for an unknown type, an unknown or mistyped setting."""
    names = layer_names(model, attention)
    settings = model.get("attn_settings") if hasattr(model, "get") else getattr(model, "attn_settings", None)
    for name in (settings or {}):
        if name not in names:
            raise ConfigError(f"model.attn_settings.{name}: no layer runs attention '{name}'"
                              f" (model.attn_layers gives {sorted(set(names))})")
    built: dict[str, Any] = {}
    for name in dict.fromkeys(names):
        if name == attention.name:
            built[name] = attention
            continue
        try:
            spec = spec_of(name)
        except ConfigError as exc:
            raise ConfigError(f"model.attn_layers: {exc}") from None
        from omegaconf import OmegaConf  # lazy: only mixed layers need it (benchmarks run without omegaconf)
        from omegaconf.errors import OmegaConfBaseException

        try:
            node = OmegaConf.structured(spec.schema)
            node = OmegaConf.merge(node, {"causal": attention.causal} if "causal" in node else {},
                                   _settings_of(model, name))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"model.attn_settings.{name}: {str(exc).splitlines()[0]}") from None
        built[name] = node
    return [built[name] for name in names]
