"""Attention: full (the baseline) and LSH (the paper's), as functions and as model cores."""

from .full import full_attention, shared_qk_full_attention

__all__ = ["full_attention", "shared_qk_full_attention"]
