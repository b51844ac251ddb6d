"""The attention settings that have one value everywhere: the keywords of LSH attention with their
defaults (`LSHSettings`), the bucket layout an `n_buckets` setting gives (`bucket_factors`), how
LSH draws its rotations (`ROTATIONS`, `rotations_of`) and the value a masked self logit takes
(`SELF_MASK_VALUE`).

This is the one place these defaults are written. The LSH functions (attention/lsh.py) take their
keywords from `LSHSettings`, the model's LSH core builds one from its config, and the config
schemas (config.py) take their defaults from here; conf/attention/*.yaml repeat no value.
No torch here: the config is validated before torch is imported.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

# A query's logit with its own key is *replaced* by this finite value (paper section 2; trax and HF
# use 1e5): a token with no other valid target (position 0 under a causal mask) still attends to
# itself, and otherwise self-attention is effectively off.
SELF_MASK_VALUE = -1e5


@dataclass(frozen=True)
class LSHSettings:
    """The keywords of LSH attention (`lsh_attention`, `lsh_attention_from_buckets`, the model's
    LSH core), with the paper's defaults. attention/lsh.py documents exactly what each does."""

    # tokens per chunk after sorting (the fast.ai Table 2 reproduction's 64; the paper calls 128
    # "typical" for long sequences)
    chunk_length: int = 64
    # keys later than the query (original positions) are excluded
    causal: bool = True
    # a chunk attends to itself and this many chunks before it (paper eq. 5)
    n_chunks_before: int = 1
    # false: no wrap-around (paper eq. 5); true: trax / HF, the look-back rolls over all rounds
    wrap_lookback: bool = False
    # false: the paper's rule (eq. 3-4): only keys of the query's own bucket; true: trax v2 / HF
    attend_across_buckets: bool = False
    # the paper's duplicate correction (eq. 13/16: subtract log N_ij); trax v2 and HF omit it
    dedup: bool = True

    def replace(self, **keywords: Any) -> "LSHSettings":
        """These settings with some fields changed (TypeError naming an unknown keyword)."""
        return dataclasses.replace(self, **keywords) if keywords else self

    @classmethod
    def of(cls, attention: Any) -> "LSHSettings":
        """The settings of an `attention=lsh` config (any object with these keys), each converted
        to its field's type."""
        return cls(**{f.name: type(f.default)(getattr(attention, f.name)) for f in dataclasses.fields(cls)})


# How LSH draws its random rotations (`attention.rotations`): "shared" (the default), one set per
# head and round that every example of the batch hashes with (as HF); "per_example", one set per
# example, head and round (as the authors' trax). Either is fresh every training step and drawn
# from `attention.eval_seed` in evaluation.
ROTATIONS = ("shared", "per_example")


def rotations_of(attention: Any) -> str:
    """`attention.rotations` of a config or a mapping; "shared" for one saved before the key existed
    (it drew them so)."""
    value = attention.get("rotations") if hasattr(attention, "get") else getattr(attention, "rotations", None)
    return str(value or ROTATIONS[0])


# `n_buckets: null` hashes with the paper's one factor, 2 * max(1, length // chunk_length), while that
# count is at most this, and with two factors of the same count above it (`even_split`). One factor
# costs count / 2 projections per token and round, which grows with the length; two cost about
# sqrt(count). Measured on a CPU in results/bucket_factors_cpu.md: splitting saves at most ~3% of
# the whole attention up to 128 buckets, 3-11% at 256, 7-13% at 512. 256, not 128, so that every
# committed profile (the largest default count: 256, memory_claims cpu at 8K in chunks of 64)
# hashes exactly as before.
SINGLE_FACTOR_MAX_BUCKETS = 256


def even_split(count: int) -> list[int]:
    """Two even factors `[f1, f2]`, `f1 <= f2`, as equal as possible (the largest even
    `f1 <= sqrt(total)` with `total / f1` even), whose product `total` is `count` rounded up to a
    multiple of 4: the smallest total at or above `count` that has a split into even factors
    (`count` itself for every power of two from 4 on). 1024 -> [32, 32], 2048 -> [32, 64],
    192 -> [12, 16], 1000 -> [20, 50], 1026 -> 1028 = [2, 514]."""
    total = 4 * -(-max(int(count), 4) // 4)
    f1 = math.isqrt(total) // 2 * 2
    while total % f1 or (total // f1) % 2:
        f1 -= 2
    return [f1, total // f1]


def bucket_factors(n_buckets: Any, length: int, chunk_length: int) -> list[Any]:
    """The bucket factors LSH hashes a sequence of `length` into, from the `n_buckets` setting:
    an int (one factor, at any length), a list (factorised buckets, as in trax), or None for the
    paper's count `2 * max(1, length // chunk_length)` (m = 2l / n_buckets): one factor up to
    `SINGLE_FACTOR_MAX_BUCKETS`, above it that count as two factors (`even_split`). Values are
    returned as given, so the config's validation can name a bad one."""
    if n_buckets is None:
        count = 2 * max(1, length // chunk_length)
        return [count] if count <= SINGLE_FACTOR_MAX_BUCKETS else even_split(count)
    if isinstance(n_buckets, (int, float, str, bool)):
        return [n_buckets]
    return list(n_buckets)  # a list or an OmegaConf ListConfig
