"""Attention: full (the baseline) and LSH (the paper's), as functions and as model cores."""

from .full import full_attention, shared_qk_full_attention
from .lsh import LSHSettings, hash_buckets, lsh_attention, lsh_attention_from_buckets

__all__ = [
    "full_attention",
    "shared_qk_full_attention",
    "hash_buckets",
    "lsh_attention",
    "lsh_attention_from_buckets",
    "LSHSettings",
]
