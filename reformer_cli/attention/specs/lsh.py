"""`attention=lsh`: the paper's angular LSH attention (attention/lsh.py defines it,
attention/lsh_core.py runs it in the model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import ConfigError
from ...primitives.attention_settings import ROTATIONS, LSHSettings, bucket_factors, rotations_of
from ..spec import AttentionSpec, MemoryTerm, choice, gathered_vectors, positive, weights

# The LSH keywords' defaults, written once (primitives/attention_settings.py).
LSH = LSHSettings()
IMPLS = ("auto", "reference", "fast")


@dataclass
class LSHAttentionConfig:
    """Angular LSH attention (paper section 2 and Appendix A). Always shared-QK. The keys that are
    keywords of the LSH functions take their defaults from `LSHSettings` (what each means is there)."""

    name: str = "lsh"
    causal: bool = LSH.causal
    dropout: float = 0.0
    n_rounds: int = 2  # hash rounds (every paper-era trax config uses 2)
    chunk_length: int = LSH.chunk_length
    # null: 2 * max(1, seq_len // chunk_length) (the paper's m = 2l / n_buckets), as two factors above
    # 256; an even int (one factor); or a list of even ints for factorised buckets as in trax
    # (attention_settings.bucket_factors).
    n_buckets: Any = None
    n_chunks_before: int = LSH.n_chunks_before
    wrap_lookback: bool = LSH.wrap_lookback
    attend_across_buckets: bool = LSH.attend_across_buckets
    dedup: bool = LSH.dedup
    impl: str = "auto"  # auto | reference | fast (fast: Triton kernels on CUDA)
    # shared: one set of rotations per head and round for the whole batch; per_example: one per
    # example too (the authors' trax) (attention_settings.ROTATIONS)
    rotations: str = ROTATIONS[0]
    eval_seed: int = 0  # rotations at evaluation are drawn from this seed: repeatable numbers


def validate(attention: Any, seq_len: int) -> None:
    positive("attention.n_rounds", attention.n_rounds)
    positive("attention.chunk_length", attention.chunk_length)
    if attention.n_chunks_before < 0:
        raise ConfigError(f"attention.n_chunks_before={attention.n_chunks_before} must be >= 0")
    choice("attention.impl", attention.impl, IMPLS)
    choice("attention.rotations", rotations_of(attention), ROTATIONS)
    if attention.eval_seed is None or not 0 <= attention.eval_seed < 2**63:
        raise ConfigError(f"attention.eval_seed={attention.eval_seed!r} must be an integer in [0, 2^63)")
    factors = bucket_factors(attention.n_buckets, seq_len, attention.chunk_length)
    if not factors:
        raise ConfigError(
            "attention.n_buckets=[]: give an even integer >= 2, a list of them for factorised"
            " buckets, or null for the paper's default"
        )
    for factor in factors:
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 2 or factor % 2:
            raise ConfigError(
                f"attention.n_buckets={attention.n_buckets!r}: buckets must be an even integer"
                " >= 2, or a list of them for factorised buckets"
            )


def label(attention: Mapping) -> str:
    """`lsh-8` (the paper's LSH, 8 rounds), `lsh-8-across-nodedup` (trax v2 / HF); `-perexample`
    with rotations drawn per example."""
    text = f"lsh-{attention['n_rounds']}"
    if attention.get("attend_across_buckets", False):
        text += "-across"
    if not attention.get("dedup", True):
        text += "-nodedup"
    if rotations_of(attention) == "per_example":
        text += "-perexample"
    return text


def build_core(attention: Any) -> Any:
    from ..lsh_core import LSHAttentionCore

    return LSHAttentionCore(attention)


def check_device(attention: Any, device: Any) -> None:
    """`attention.impl=fast` where its kernels cannot run: one line before the model is built."""
    if attention.impl == "fast":
        from ..lsh_core import lsh_implementation

        lsh_implementation("fast", device)


def memory_per_query(attention: Any, seq_len: int) -> list[MemoryTerm]:
    """Per query and head: a weight for each key of its window in every round (lsh.look_back: its
    chunk and n_chunks_before chunks), and the hash's projections, n_buckets / 2 per round (summed
    over the factors of factorised buckets; the paper's default n_buckets grows with seq_len),
    computed without gradients and freed before the attention (transient)."""
    rounds = attention.n_rounds
    projections = sum(bucket_factors(attention.n_buckets, seq_len, attention.chunk_length)) // 2
    return [
        weights(rounds * (attention.n_chunks_before + 1) * attention.chunk_length,
                "LSH's window weights, trainer.batch_size x model.n_heads x task.seq_len x attention.n_rounds x"
                " (attention.n_chunks_before + 1) x attention.chunk_length (reduce attention.n_chunks_before or"
                " attention.chunk_length)"),
        MemoryTerm(rounds * projections, "LSH's hash projections, trainer.batch_size x model.n_heads x task.seq_len x"
                   " attention.n_rounds x attention.n_buckets / 2 (set attention.n_buckets lower, or factorised as a"
                   " list such as [64, 64])", transient=True),
    ]


def memory_vectors(attention: Any, d_head: int) -> int:
    """Its sorted and gathered vectors: every round's."""
    return gathered_vectors(int(attention.n_rounds), d_head)


SPEC = AttentionSpec(
    name="lsh",
    schema=LSHAttentionConfig,
    build_core=build_core,
    validate=validate,
    label=label,
    shares_qk=lambda attention: True,
    eval_seed=lambda attention: int(attention.eval_seed or 0),
    check_device=check_device,
    legacy={"attend_across_buckets": True, "dedup": False},
    memory_per_query=memory_per_query,
    memory_vectors=memory_vectors,
    hashes=True,
    describe=lambda attention: f"LSH, {attention['n_rounds']} round(s), chunk {attention['chunk_length']}",
)
