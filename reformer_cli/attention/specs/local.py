"""`attention=local`: chunked local attention with separate Q and K (attention/local.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import ConfigError
from ..spec import AttentionSpec, MemoryTerm, gathered_vectors, positive, weights


@dataclass
class LocalAttentionConfig:
    """Local attention (trax's local attention, transformers' LocalSelfAttention): a query attends
    its own chunk and `n_chunks_before` chunks before it (`n_chunks_after` after it, when not causal)."""

    name: str = "local"
    causal: bool = True
    dropout: float = 0.0  # on attention probabilities
    chunk_length: int = 64  # positions per chunk (transformers' local_attn_chunk_length)
    n_chunks_before: int = 1  # earlier chunks each query also attends
    n_chunks_after: int = 0  # later chunks each query also attends (only without a causal mask)


def validate(attention: Any, seq_len: int) -> None:
    positive("attention.chunk_length", attention.chunk_length)
    for key in ("n_chunks_before", "n_chunks_after"):
        if attention[key] is None or attention[key] < 0:
            raise ConfigError(f"attention.{key}={attention[key]!r} must be >= 0")
    if attention.causal and attention.n_chunks_after > 0:
        raise ConfigError(f"attention.n_chunks_after={attention.n_chunks_after}: a causal query attends no"
                          " later chunk (set attention.causal=false or n_chunks_after=0)")


def label(attention: Mapping) -> str:
    """`local-64` (chunks of 64, one chunk before), `local-64-b2-a1` (2 before, 1 after)."""
    text = f"local-{attention['chunk_length']}"
    before, after = attention.get("n_chunks_before", 1), attention.get("n_chunks_after", 0)
    if before != 1 or after:
        text += f"-b{before}" + (f"-a{after}" if after else "")
    return text


def build_core(attention: Any) -> Any:
    from ..local import LocalAttentionCore

    return LocalAttentionCore(attention)


def memory_per_query(attention: Any, seq_len: int) -> list[MemoryTerm]:
    """Per query and head, a weight for each key of its window (local.chunk_window)."""
    return [weights((attention.n_chunks_before + 1 + attention.n_chunks_after) * attention.chunk_length,
                    "local attention's window weights, trainer.batch_size x model.n_heads x task.seq_len x"
                    " (attention.n_chunks_before + 1 + attention.n_chunks_after) x attention.chunk_length (reduce"
                    " attention.n_chunks_before or attention.chunk_length)")]


def memory_vectors(attention: Any, d_head: int) -> int:
    """Its chunks' gathered vectors: one round's."""
    return gathered_vectors(1, d_head)


SPEC = AttentionSpec(name="local", schema=LocalAttentionConfig, build_core=build_core, validate=validate,
                     label=label, memory_per_query=memory_per_query, memory_vectors=memory_vectors,
                     describe=lambda attention: f"local, chunk {attention['chunk_length']}")
