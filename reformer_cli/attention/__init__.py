"""Attention: full (the baseline), LSH (the paper's) and local, as functions and as model cores.

Each attention type is described by one spec (attention/spec.py, attention/specs/), found by name
in attention/registry.py. The functions below are loaded on first use, so that the config can ask
the registry without importing torch.
"""

from importlib import import_module

_HOMES = {
    "full_attention": ".full",
    "shared_qk_full_attention": ".full",
    "hash_buckets": ".lsh",
    "lsh_attention": ".lsh",
    "lsh_attention_from_buckets": ".lsh",
    "LSHSettings": ".lsh",
}

__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name], __name__), name)
