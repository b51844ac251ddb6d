"""The attention types by name: `spec_of(name)` and `register(spec)`; `baseline()`, the one the
benchmarks measure the others against, and `hashes(name)`.

Every module of `reformer_cli/attention/specs/` defines one `SPEC` and is registered on first use;
a type defined elsewhere (a plugin, a test) is added with `register`. An unknown name is a one-line
ConfigError listing the known ones. No torch here (see attention/spec.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..errors import ConfigError
from .spec import AttentionSpec, choice, fraction

_SPECS: dict[str, AttentionSpec] = {}
_BUILT_IN_LOADED = False


def _load_built_in() -> None:
    global _BUILT_IN_LOADED
    if _BUILT_IN_LOADED:
        return
    _BUILT_IN_LOADED = True
    from . import specs

    for module in sorted(m.name for m in pkgutil.iter_modules(specs.__path__)):
        register(importlib.import_module(f"{specs.__name__}.{module}").SPEC)


def register(spec: AttentionSpec) -> AttentionSpec:
    """Make `spec` known as `attention=<spec.name>` (replacing a spec of that name). Its option file
    `<config dir>/attention/<name>.yaml` starts from `/schema/attention@_here_: <name>`."""
    if not isinstance(spec, AttentionSpec):
        raise TypeError(f"register() takes an AttentionSpec, not {type(spec).__name__}")
    _load_built_in()
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget the type `name` (a test's throwaway type)."""
    _SPECS.pop(name, None)


def specs() -> dict[str, AttentionSpec]:
    """Every known type, by name."""
    _load_built_in()
    return dict(_SPECS)


def spec_of(attention: Any) -> AttentionSpec:
    """The spec of an attention config (or mapping, or name); ConfigError (one line) if unknown."""
    name = attention if isinstance(attention, str) else _name_of(attention)
    known = specs()
    if name not in known:
        raise ConfigError(f"unknown attention '{name}' (available: {', '.join(sorted(known))})")
    return known[name]


def baseline() -> AttentionSpec:
    """The exact attention the benchmarks measure the others against (the one spec flagged
    `baseline`: full attention); its name names their reference rows and `x full` columns."""
    flagged = [spec for spec in specs().values() if spec.baseline]
    if len(flagged) != 1:
        raise ConfigError(f"{len(flagged)} attention types are flagged as the baseline"
                          f" ({', '.join(sorted(s.name for s in flagged)) or 'none'}): exactly one must be")
    return flagged[0]


def hashes(attention: Any) -> bool:
    """Whether an attention config (or mapping, or name) hashes into buckets over rounds (its
    spec's `hashes`); False for a name no spec has (an old record's)."""
    name = attention if isinstance(attention, str) else _name_of(attention)
    spec = specs().get(name)
    return spec is not None and spec.hashes


def _name_of(attention: Any) -> Any:
    if hasattr(attention, "get"):
        return attention.get("name")
    return getattr(attention, "name", None)


def validate_attention(attention: Any, seq_len: int) -> None:
    """The checks every attention shares, then its spec's own; ConfigError (one line)."""
    choice("attention.name", _name_of(attention), tuple(sorted(specs())))
    fraction("attention.dropout", attention.dropout)
    spec_of(attention).validate(attention, seq_len)


def complete_stored_attention(attention: dict) -> tuple[dict, dict]:
    """A stored attention config (a checkpoint's) with every key: missing ones get the value the
    run was trained with (the spec's `legacy`). Returns (completed, the keys filled in)."""
    known = specs()
    legacy = known[attention.get("name")].legacy if attention.get("name") in known else {}
    filled = {k: v for k, v in legacy.items() if k not in attention}
    return {**attention, **filled}, filled


def build_attention_core(attention: Any) -> Any:
    """The core (`primitives.attention_core.AttentionCore`) computing `attention`, built by its
    spec; ConfigError (one line) for an unknown name."""
    return spec_of(attention).build_core(attention)
