"""Per-forward state: where randomness comes from and what a recomputation must replay.

Every random draw in the model (dropout masks, LSH rotations) comes from a `torch.Generator`
seeded by `derive_seed(forward seed, layer, purpose)`. The trainer passes a fresh seed each step and
evaluation a fixed one, so training draws fresh randomness, evaluation is repeatable, and a
reversible block's recomputation in the backward pass reproduces the forward's draws exactly, all
without reading or writing the global RNG (peers' `torch.manual_seed` calls break torch.compile and
any other RNG consumer; docs/model.md, "Randomness and replay").

`cache` carries what a recomputation must reuse rather than recompute: the LSH buckets of the forward
(trax and HF do the same), since a recomputed input can differ from the original by rounding and
flip a bucket. Protocol: a module that owns replayable state uses the key `(layer, name)`; when
`cache` is a dict and the key is absent it computes and stores the state, when the key is present
it reuses it; when `cache` is None (a plain forward, evaluation) it just computes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any printable parts (same parts, same seed, on every machine)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass
class ForwardContext:
    seed: int = 0
    training: bool = False
    # filled by the first pass and read by a recomputation (reversible backward); None: no replay
    cache: dict | None = None
    # statistics an evaluation asked for, filled by the layers: {"self_weight": []} collects each
    # attention layer's weight on the diagonal, `[batch, length]` (attention/self_weight.py)
    diagnostics: dict | None = None

    def generator(self, device: torch.device, *key: Any) -> torch.Generator:
        """A generator for one purpose (e.g. `(layer, "rotations")`), fresh on each call."""
        gen = torch.Generator(device=device)
        gen.manual_seed(derive_seed(self.seed, *key))
        return gen

    def dropout(self, x: torch.Tensor, p: float, *key: Any) -> torch.Tensor:
        """Inverted dropout whose mask depends only on (seed, key, shape): replayable."""
        if not self.training or p == 0.0:
            return x
        gen = self.generator(x.device, *key)
        keep = torch.rand(x.shape, generator=gen, device=x.device) >= p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - p))
