"""What a recomputation in the backward pass needs, shared by reversible layers and chunking.

Both reversible.py and chunking.py are `torch.autograd.Function`s that run their forward without
keeping activations and, in their backward, run parts of the model again with gradients enabled.
Two things must match the forward for the recomputation to be exact:

* the randomness: it comes from `ForwardContext` (a pure function of seed, key and shape), never
  from the global RNG, so replaying it is just calling the same code with the same context;
* the autocast state: `loss.backward()` usually runs outside the `torch.autocast` block of the
  forward, so the backward must re-enter the forward's state itself (`AutocastState`), as
  `torch.utils.checkpoint` does.

Parameter gradients are computed with `torch.autograd.grad` (which never writes `.grad`) and
*returned* from the Function's backward, the parameters being inputs of the Function. Autograd then
accumulates each parameter's gradient once, through its ordinary AccumulateGrad node, so
DistributedDataParallel's per-parameter hooks fire exactly once per backward (peers that call
`torch.autograd.backward` inside their backward, writing `.grad` directly, fail under DDP with
"Expected to mark a variable ready only once": docs/model.md, "Data parallelism and compile"). The
Function itself runs eagerly; `torch.compile` can still compile F and G, which it calls.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class AutocastState:
    """The autocast settings in force for one device type."""

    device_type: str
    enabled: bool
    dtype: torch.dtype
    cache_enabled: bool

    @classmethod
    def capture(cls, device: torch.device) -> "AutocastState":
        kind = device.type
        if not torch.amp.is_autocast_available(kind):
            return cls(kind, False, torch.float32, True)
        return cls(
            kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind), torch.is_autocast_cache_enabled()
        )

    def restore(self):
        """A context manager that re-enters this state (a no-op when autocast is unavailable)."""
        if not torch.amp.is_autocast_available(self.device_type):
            return contextlib.nullcontext()
        return torch.autocast(
            self.device_type, dtype=self.dtype, enabled=self.enabled, cache_enabled=self.cache_enabled
        )


def trainable(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The parameters that need gradients, each once (a tied weight appears once)."""
    seen: set[int] = set()
    out = []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def leaf(x: torch.Tensor, requires_grad: bool = True) -> torch.Tensor:
    """`x` detached (no copy) and requiring grad: where a recomputation starts."""
    return x.detach().requires_grad_(requires_grad)


class GradientSum:
    """Parameter gradients summed over several `autograd.grad` calls (chunks, sublayers)."""

    def __init__(self, params: Sequence[torch.Tensor]):
        self.params = list(params)
        self.index = {id(p): i for i, p in enumerate(self.params)}
        self.grads: list[torch.Tensor | None] = [None] * len(self.params)

    def vjp(
        self,
        output: torch.Tensor,
        grad_output: torch.Tensor,
        inputs: Sequence[torch.Tensor],
        params: Sequence[torch.Tensor],
    ) -> list[torch.Tensor | None]:
        """Back-propagate `grad_output` through `output`: returns the gradients of `inputs` and
        adds those of `params` (a subset of this sum's parameters) to the running sums."""
        inputs = list(inputs)
        params = [p for p in params if id(p) in self.index]
        # ordinary autograd hands a residual branch its gradient in the branch's own dtype (bf16 under
        # autocast); do the same
        grads = torch.autograd.grad(output, inputs + params, grad_output.to(output.dtype), allow_unused=True)
        for p, g in zip(params, grads[len(inputs):]):
            if g is None:
                continue
            i = self.index[id(p)]
            self.grads[i] = g if self.grads[i] is None else self.grads[i] + g
        return list(grads[: len(inputs)])

    def result(self) -> tuple[torch.Tensor | None, ...]:
        return tuple(self.grads)
