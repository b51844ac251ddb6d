"""What the rest of the program knows about one attention type: its `AttentionSpec`.

An attention type (full, lsh, local, ...) is described once, by a spec in its own module under
`reformer_cli/attention/specs/` plus its option file `conf/attention/<name>.yaml`. The spec holds
the type's config schema, its validation, its short label (run names, tables, W&B), whether its
weights share Q and K, the seed evaluation draws from, the check that a device can run it, the
core that computes it, what it holds in memory per query (the memory estimate's terms), and what
benchmarks and pages need to know of it (the baseline, whether it hashes, its settings in words).
Everything else (Hydra's schemas, `validate`, `attention_label`, the trainer's device check,
evaluation under another attention, the model's cores, the memory estimate, the benchmarks and
their pages) asks the registry (`attention/registry.py`) for the spec by the config's `name`.

No torch here: the config is validated from specs before torch is imported, so a spec names its
core through `build_core`, which may import the core's module when it is called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import ConfigError


def no_check(attention: Any, *args: Any) -> None:
    """A validation or device check with nothing to check."""


def fraction(key: str, value: float) -> None:
    """ConfigError unless 0 <= value < 1 (a dropout rate)."""
    if value is None or not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{key}={value!r} must be in [0, 1)")


def choice(key: str, value: Any, allowed: tuple) -> None:
    """ConfigError unless value is one of `allowed`."""
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(map(str, allowed))}")


def positive(key: str, value: Any) -> None:
    """ConfigError unless value is an integer >= 1."""
    if value is None or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}={value!r} must be a positive integer")


WEIGHT_COPIES = 4  # an attention's weights: scores, masked scores, probabilities, their gradient
VECTOR_COPIES = 6  # per round: sorted queries/keys and values, the look-back's keys and values, the output


@dataclass(frozen=True)
class MemoryTerm:
    """One of the memory estimate's terms for an attention's tensors (memory_estimate.py): `floats`
    it holds per query and head, `what` they are with their shape and the option that shrinks them.
    A `transient` term is computed without gradients and freed before the attention: it exists next
    to the activations but not next to the attention's own tensors (the estimate counts the larger
    phase), and is freed before the next layer (the estimate counts the largest layer's)."""

    floats: int
    what: str
    transient: bool = False


def weights(floats_per_query: int, what: str) -> MemoryTerm:
    """An attention's weights, `floats_per_query` per query and head, kept for the backward
    `WEIGHT_COPIES` times."""
    return MemoryTerm(floats_per_query * WEIGHT_COPIES, what)


def gathered_vectors(rounds: int, d_head: int) -> int:
    """Floats per query and head of an attention over chunks' sorted and gathered vectors: `rounds`
    x d_head, `VECTOR_COPIES` times."""
    return rounds * d_head * VECTOR_COPIES


@dataclass(frozen=True)
class AttentionSpec:
    """One attention type. Callables take the attention config (an OmegaConf node, a dataclass or,
    for `label` and `shares_qk`, the plain dict a record stores)."""

    name: str
    # the dataclass of `attention=<name>` (registered with Hydra as schema/attention/<name>); its
    # `name` field defaults to `name`
    schema: type
    # config -> the core (`primitives.attention_core.AttentionCore`) computing this attention
    build_core: Callable[[Any], Any]
    # (config, seq_len) -> None, ConfigError (one line) on a bad value; the checks every type
    # shares (name, dropout) run first
    validate: Callable[[Any, int], None] = no_check
    # config (a mapping) -> the short name runs and tables show (`lsh-4`, `full-sharedqk`)
    label: Callable[[Mapping], str] = lambda attention: str(attention["name"])
    # config (a mapping) -> whether the weights hold one shared QK projection
    shares_qk: Callable[[Mapping], bool] = lambda attention: False
    # config -> the seed evaluation draws this attention's random numbers from (0: it draws none)
    eval_seed: Callable[[Any], int] = lambda attention: 0
    # (config, torch device) -> None, UserError (one line) when the device cannot run it
    check_device: Callable[[Any, Any], None] = no_check
    # keys added to the schema after runs were saved with it, and the value that reproduces what
    # those runs computed (a checkpoint's config lacks them; the new default would change it)
    legacy: Mapping[str, Any] = field(default_factory=dict)
    # whether it can form the full length x length weight matrix (the memory estimate lists its
    # terms first)
    quadratic_memory: bool = False
    # (config, seq_len) -> [MemoryTerm]: the memory estimate's terms for the tensors this config
    # holds per query and head beyond the model's (the weights it builds: `weights`)
    memory_per_query: Callable[[Any, int], list[MemoryTerm]] = lambda attention, seq_len: []
    # (config, d_head) -> floats per query and head of the sorted and gathered vectors of an
    # attention over chunks (`gathered_vectors`; 0: none), held in the compute dtype
    memory_vectors: Callable[[Any, int], int] = lambda attention, d_head: 0
    # whether it is the exact attention the others are measured against (one type is: full
    # attention): the benchmarks' reference row and the pages' `x full` columns are named after it
    # (registry.baseline())
    baseline: bool = False
    # whether it hashes positions into buckets over rounds (attention.n_rounds, chunked by
    # attention.chunk_length): pages describe such a type by its rounds and chunks, and tell which
    # bucket rule it followed (registry.hashes)
    hashes: bool = False
    # config (a mapping) -> the type and its settings in words, as the memory benchmark's page
    # states them (`LSH, 2 round(s), chunk 64`, `full, shared-QK`)
    describe: Callable[[Mapping], str] = lambda attention: str(attention["name"])
