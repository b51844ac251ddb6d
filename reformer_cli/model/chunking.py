"""Position-wise computations in chunks along the sequence, recomputed chunk by chunk in backward.

The paper's section 3 (eq. 10): the feed-forward layer and the output layer + loss act on each
position independently, so they can be computed on `c` slices of the sequence one after another;
"chunking only affects the implementation; it is numerically identical". Under ordinary autograd
chunking alone saves nothing, since every chunk's activations are kept for the backward pass. Here
a `torch.autograd.Function` runs the chunks without keeping activations and saves only its input;
the backward recomputes one chunk at a time with gradients and back-propagates it at once, so
only one chunk's activations (e.g. `[batch, length / c, d_ff]` of the feed-forward, or
`[batch, length / c, vocab]` logits) are alive at any time. The price is one extra forward of the
chunked function (as trax's `Scan(remat=True)` pays).

Randomness inside a chunk (dropout) comes from the `ForwardContext`, so the recomputation draws
the same masks. Masks are keyed by the chunk index: with dropout > 0 a different number of chunks
gives a different (identically distributed) dropout pattern; without dropout chunking is exact.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .recompute import AutocastState, GradientSum, leaf, trainable

# fn(chunk of the input, chunk index) -> that chunk's output
ChunkFn = Callable[[torch.Tensor, int], torch.Tensor]


def split(x: torch.Tensor, chunks: int) -> tuple[torch.Tensor, ...]:
    """The chunks of `x` along the sequence (dim 1); the same boundaries everywhere."""
    return x.chunk(chunks, dim=1)


def _combine(pieces: list[torch.Tensor], reduce: str) -> torch.Tensor:
    if reduce == "cat":
        return torch.cat(pieces, dim=1)
    total = pieces[0]
    for piece in pieces[1:]:
        total = total + piece
    return total


class _RecomputedChunks(torch.autograd.Function):
    @staticmethod
    def forward(fctx, fn: ChunkFn, chunks: int, reduce: str, x: torch.Tensor, *params: torch.Tensor):
        fctx.fn, fctx.chunks, fctx.reduce, fctx.params = fn, chunks, reduce, params
        fctx.autocast = AutocastState.capture(x.device)
        pieces = [fn(piece, i) for i, piece in enumerate(split(x, chunks))]  # grad mode is off here
        fctx.save_for_backward(x)
        return _combine(pieces, reduce)

    @staticmethod
    def backward(fctx, grad_out: torch.Tensor):
        (x,) = fctx.saved_tensors
        sums = GradientSum(fctx.params)
        input_grads = []
        grad_pieces = split(grad_out, fctx.chunks) if fctx.reduce == "cat" else None
        with torch.enable_grad(), fctx.autocast.restore():
            for i, piece in enumerate(split(x, fctx.chunks)):
                start = leaf(piece, x.requires_grad)
                out = fctx.fn(start, i)
                g = grad_pieces[i] if grad_pieces is not None else grad_out
                inputs = [start] if x.requires_grad else []
                input_grads += sums.vjp(out, g, inputs, fctx.params)
        grad_x = None
        if x.requires_grad:
            pieces = split(x, fctx.chunks)
            grad_x = torch.cat([torch.zeros_like(p) if g is None else g for g, p in zip(input_grads, pieces)], dim=1)
        return (None, None, None, grad_x, *sums.result())


def _run(fn: ChunkFn, x: torch.Tensor, chunks: int, params: Sequence[torch.Tensor], reduce: str) -> torch.Tensor:
    params = trainable(params)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or bool(params))
    if chunks == 1 or not needs_grad:
        # one chunk: plain autograd (nothing to gain); no gradient wanted: nothing is kept anyway
        return _combine([fn(piece, i) for i, piece in enumerate(split(x, chunks))], reduce)
    return _RecomputedChunks.apply(fn, chunks, reduce, x, *params)


def map_chunks(fn: ChunkFn, x: torch.Tensor, chunks: int, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """`cat([fn(x_k, k) for each chunk x_k of x along dim 1], dim=1)`, keeping one chunk's
    activations at a time for the backward. `params`: every parameter `fn` uses."""
    return _run(fn, x, chunks, params, "cat")


def sum_chunks(fn: ChunkFn, x: torch.Tensor, chunks: int, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """`sum(fn(x_k, k) for each chunk x_k of x along dim 1)` (e.g. a loss), keeping one chunk's
    activations at a time for the backward."""
    return _run(fn, x, chunks, params, "sum")
