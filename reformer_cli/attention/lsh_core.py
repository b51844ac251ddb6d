"""LSH attention inside the model: rotations from the run's generator, replayable buckets, and the
choice of implementation (reference or fast).

The core computes exactly `lsh_attention(qk, v, rotations, ...)` of `attention/lsh.py` with
rotations drawn from `ctx.generator(device, layer, "lsh_rotations")`, shared by the batch or one set
per example (`attention.rotations`, drawn as one `[batch, ...]` tensor): the trainer passes a fresh
seed every step (fresh rotations, as trax and HF draw them on every forward pass) and evaluation a
seed derived from `attention.eval_seed` (repeatable numbers). The buckets go through `ctx.cache`
under `(layer, "lsh_buckets")` so that a reversible block's recomputation reuses the forward's
buckets (primitives/context.py describes the protocol). With the fast implementation the hashing is the
fast path's fused kernel too (`lsh_hasher`); unsupported settings fall back to the reference
inside `reformer_cli.attention.fast` with one log line.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable

import torch

from ..errors import UserError
from ..primitives.attention_core import AttentionCore
from ..primitives.attention_settings import LSHSettings, bucket_factors, rotations_of
from ..primitives.context import ForwardContext
from .lsh import hash_buckets, lsh_attention_from_buckets, rotations_shape

FAST_MODULE = "reformer_cli.attention.fast"


@lru_cache(maxsize=None)
def _fast_module() -> tuple[Any, str | None]:
    """(module, None) if the fast implementation imports (it needs triton), else (None, why not)."""
    try:
        from . import fast as module
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not hasattr(module, "lsh_attention_from_buckets"):
        return None, f"{FAST_MODULE} has no lsh_attention_from_buckets"
    return module, None


def lsh_implementation(impl: str, device: torch.device) -> Callable[..., torch.Tensor]:
    """The `lsh_attention_from_buckets` to use for `attention.impl` on `device`.

    reference: always the plain-PyTorch reference. fast: the GPU kernels, which need CUDA and the
    module `reformer_cli.attention.fast` (a UserError names what is missing). auto: fast when both
    are there, else the reference."""
    if impl == "reference":
        return lsh_attention_from_buckets
    module, why = _fast_module()
    if impl == "fast":
        if device.type != "cuda":
            raise UserError(f"attention.impl=fast needs a CUDA device (this run is on {device}); use attention.impl=reference")
        if module is None:
            raise UserError(f"attention.impl=fast needs the module {FAST_MODULE}, which is not available ({why});"
                            " use attention.impl=reference")
        return module.lsh_attention_from_buckets
    if impl == "auto" and device.type == "cuda" and module is not None:
        return module.lsh_attention_from_buckets
    return lsh_attention_from_buckets


def lsh_hasher(impl: str, device: torch.device) -> Callable[..., torch.Tensor]:
    """The `hash_buckets` that goes with `lsh_implementation(impl, device)`: the fast path's fused
    hashing kernel when the fast path is chosen, else the reference."""
    if lsh_implementation(impl, device) is lsh_attention_from_buckets:
        return hash_buckets
    module, _ = _fast_module()
    return getattr(module, "hash_buckets", hash_buckets)


class LSHAttentionCore(AttentionCore):
    """Shared-QK angular LSH attention configured by an `attention=lsh` config."""

    shared_qk = True

    def __init__(self, attention: Any):  # specs/lsh.py: LSHAttentionConfig
        self.settings = LSHSettings.of(attention)
        self.dropout = float(attention.dropout)
        self.n_rounds = int(attention.n_rounds)
        self.n_buckets = attention.n_buckets  # None: the paper's default for the actual length
        self.impl = str(attention.impl)
        self.per_example = rotations_of(attention) == "per_example"  # else shared by the batch

    def factors(self, length: int) -> list[int]:
        """The bucket factors for a sequence of `length` (`bucket_factors` of the settings)."""
        return [int(f) for f in bucket_factors(self.n_buckets, length, self.settings.chunk_length)]

    def rotations(self, ctx: ForwardContext, layer: int, n_heads: int, d_head: int, factors: list[int],
                  device: torch.device, *, batch: int | None = None) -> list[torch.Tensor]:
        """Random rotations R ~ N(0, 1), one tensor per factor f (fp32): `[heads, d_head, n_rounds, f/2]`
        shared by the batch, or with `attention.rotations=per_example` one set per example of the
        `batch` (which it then needs), `[batch, heads, d_head, n_rounds, f/2]`."""
        if self.per_example and batch is None:
            raise ValueError("rotations drawn per example need the batch size")
        gen = ctx.generator(device, layer, "lsh_rotations")
        per = batch if self.per_example else None
        return [torch.randn(rotations_shape(n_heads, d_head, self.n_rounds, f, per), generator=gen, device=device)
                for f in factors]

    def buckets(self, qk: torch.Tensor, ctx: ForwardContext, layer: int, factors: list[int]) -> torch.Tensor:
        """Hash into the bucket `factors`, or replay the forward's buckets from `ctx.cache` (key
        `(layer, "lsh_buckets")`)."""
        key = (layer, "lsh_buckets")
        if ctx.cache is not None and key in ctx.cache:
            return ctx.cache[key]
        batch, heads, _, d_head = qk.shape
        hash_fn = lsh_hasher(self.impl, qk.device)
        buckets = hash_fn(qk, self.rotations(ctx, layer, heads, d_head, factors, qk.device, batch=batch))
        if ctx.cache is not None:
            ctx.cache[key] = buckets
        return buckets

    def __call__(self, q, k, v, ctx, layer, key_padding_mask=None):
        factors = self.factors(q.shape[-2])
        buckets = self.buckets(q, ctx, layer, factors)
        attend = lsh_implementation(self.impl, q.device)
        return attend(q, v, buckets, self.settings, n_buckets=math.prod(factors), key_padding_mask=key_padding_mask,
                      probs_dropout=self.probs_dropout(ctx, self.dropout, layer))
