"""What every kernel module shares: the interpreter switch, block sizes and the mask constants.

`TRITON_INTERPRET=1` must be set before this package is imported (`@triton.jit` reads it when a
kernel is *defined*); then the kernels run on CPU tensors through Triton's interpreter, which is how
CI checks them without a GPU (tests/conftest.py sets it on machines without CUDA).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from ..common import KEY_NORM_EPS, MASK_VALUE, SELF_MASK_VALUE

# Kernels were defined for Triton's CPU interpreter (read once, at import, like @triton.jit does).
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# The same constants as the reference (attention/common.py), usable inside kernels.
SELF_LOGIT = tl.constexpr(SELF_MASK_VALUE)
EXCLUDED_LOGIT = tl.constexpr(MASK_VALUE)
NORM_EPS = tl.constexpr(KEY_NORM_EPS)

# Input dtypes the kernels take; logits, softmax statistics and accumulators are always fp32.
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def block(n: int) -> int:
    """A tile size covering n: a power of two, at least 16 (tl.dot's smallest operand dimension)."""
    return max(16, triton.next_power_of_2(n))


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs: 'tf32x3' (each product from three tf32 products on tensor cores, about fp32
    accuracy; plain tf32 would miss the 1e-4 bound, and 'ieee' FMA dots spill ~14 KB per thread and
    compile for tens of seconds on sm_90). bf16 / fp16 products are exact in fp32 anyway. The
    interpreter multiplies in fp32 whatever this says."""
    return "tf32x3" if dtype == torch.float32 else "tf32"


def launchable(t: torch.Tensor) -> bool:
    """Whether the kernels can run on this tensor's device (CUDA, or CPU under the interpreter)."""
    return t.device.type == "cuda" or (INTERPRET and t.device.type == "cpu")


@triton.jit
def mm(a, b, PREC: tl.constexpr, UPCAST: tl.constexpr):
    """a @ b with fp32 accumulation. UPCAST (interpreter only): multiply in fp32, because the
    interpreter multiplies bf16 tiles as raw integers; bf16 x bf16 products are exact in fp32, so the
    result is what a tensor core computes."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def inverse_norm(x):
    """1 / ||x|| per row, in fp32 (common.unit_norm_keys: x * rsqrt(sum x^2 + eps))."""
    xf = x.to(tl.float32)
    return 1.0 / tl.sqrt(tl.sum(xf * xf, 1) + NORM_EPS)


@triton.jit
def window_chunk(g, rnd, n, t: tl.constexpr, N_CHUNKS, N_TOTAL, WRAP: tl.constexpr):
    """The t-th chunk before global chunk g (= rnd * N_CHUNKS + n) in g's window, and whether that
    window slot lies before the first chunk (its keys are then excluded, as the reference's rolled,
    `valid`-masked slots). Without wrap the reference rolls within the round; with wrap over all
    rounds' chunks."""
    if WRAP:
        kc = ((g - t) % N_TOTAL + N_TOTAL) % N_TOTAL
        before_first = n < 0
    else:
        kc = rnd * N_CHUNKS + ((n - t) % N_CHUNKS + N_CHUNKS) % N_CHUNKS
        before_first = n < t
    return kc, before_first


@triton.jit
def seeing_chunk(g, rnd, n, t: tl.constexpr, N_CHUNKS, N_TOTAL, WRAP: tl.constexpr):
    """The global chunk whose window holds chunk g as its t-th chunk back (the inverse of
    window_chunk), and whether that slot lies before the first chunk."""
    if WRAP:
        qc = (g + t) % N_TOTAL
        before_first = n < 0
    else:
        qc = rnd * N_CHUNKS + (n + t) % N_CHUNKS
        before_first = n + t >= N_CHUNKS
    return qc, before_first


@triton.jit
def masked_logits(s, q_pos, k_pos, k_slot, n_real, before_first, k_lane, CAUSAL: tl.constexpr):
    """The reference's masks on a [queries, keys] tile of q . k / |k| (lsh.lsh_logits): the self
    logit replaced by -1e5; excluded keys (padding / masked keys, which sort after every real key so
    that their round-local slot is >= n_real; slots before the first chunk; later keys when causal)
    replaced by -1e9; lanes past the chunk's end do not exist (-inf, no weight at all).

    Returns (logits, frozen): frozen marks logits that were replaced (no gradient flows to q, k)."""
    is_self = q_pos[:, None] == k_pos[None, :]
    excluded = ((k_slot >= n_real) | before_first)[None, :]
    if CAUSAL:
        excluded = excluded | (k_pos[None, :] > q_pos[:, None])
    s = tl.where(is_self, SELF_LOGIT, s)
    s = tl.where(excluded, EXCLUDED_LOGIT, s)
    s = tl.where(k_lane[None, :], s, float("-inf"))
    frozen = is_self | excluded | (s == float("-inf"))
    return s, frozen
