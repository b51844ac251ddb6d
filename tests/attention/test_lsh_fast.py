"""The fast LSH attention (Triton kernels) against the reference, forward and backward.

On a CPU the kernels run under Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before they are defined), at small sizes; on a GPU the same tests run compiled, and the `gpu`
tests add realistic sizes.

The oracle is the reference evaluated in fp64 (exact arithmetic for these purposes): with fp32
inputs the kernels must agree with it to fp32 rounding, relative error (max |error| / max |value|)
at most 1e-4, on outputs at every position and on the gradients of qk and v for a random upstream
gradient at every position. (The reference run in fp32 would itself miss that bound in two corner
cases the kernels handle exactly; see reformer_cli/attention/fast/__init__.py.)

Both bucket rules are checked, each with and without the duplicate correction: the paper's
(`attend_across_buckets=False`, only keys of the query's own bucket and round) and trax v2 / HF's
(every slot of the window), `dedup=True` subtracting log N_ij (the paper's Appendix A).
"""

from __future__ import annotations

import logging

import pytest
import torch

pytest.importorskip("triton")

from reformer_cli.attention import fast  # noqa: E402
from reformer_cli.attention import lsh  # noqa: E402
from reformer_cli.attention.lsh_core import LSHAttentionCore, lsh_hasher, lsh_implementation  # noqa: E402
from reformer_cli.config import LayerConfig, LSHAttentionConfig, ModelConfig  # noqa: E402
from reformer_cli.errors import UserError  # noqa: E402

# Configs are built from the dataclasses, not composed by Hydra: the GPU machine that runs this
# file (`make bench-gpu`) has torch and triton but no hydra.

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")

# (attend_across_buckets, dedup): the paper's defaults (same-bucket rule, duplicate correction)
# first, then the rule alone, trax v2 / HF (across buckets, no correction), across with the correction
PAPER = dict(attend_across_buckets=False, dedup=True)
RULES = [PAPER, dict(attend_across_buckets=False, dedup=False), dict(attend_across_buckets=True, dedup=False),
         dict(attend_across_buckets=True, dedup=True)]


def rule_id(rule: dict) -> str:
    return ("across" if rule["attend_across_buckets"] else "same") + ("-dedup" if rule["dedup"] else "")


def test_kernels_can_run_here():
    """On a CPU the kernels must have been defined for the interpreter (else every test below
    would fail with a device error rather than test anything)."""
    assert CUDA or fast.INTERPRET, "TRITON_INTERPRET=1 must be set before reformer_cli.attention.fast is imported"


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def make_inputs(seed, batch, heads, length, d, factors, rounds, dtype, padding=False, device=DEVICE):
    gen = torch.Generator().manual_seed(seed)
    qk = torch.randn(batch, heads, length, d, generator=gen)
    v = torch.randn(batch, heads, length, d, generator=gen)
    rotations = [torch.randn(heads, d, rounds, f // 2, generator=gen) for f in factors]
    mask = None
    if padding:
        mask = torch.rand(batch, length, generator=gen) > 0.3
        mask[:, 0] = True
        mask = mask.to(device)
    grad = torch.randn(batch, heads, length, d, generator=gen)
    return (qk.to(device, dtype), v.to(device, dtype), [r.to(device) for r in rotations], mask, grad.to(device, dtype))


def forward_backward(fn, qk, v, buckets, grad, **kwargs):
    qk = qk.detach().requires_grad_()
    v = v.detach().requires_grad_()
    out = fn(qk, v, buckets, **kwargs)
    dqk, dv = torch.autograd.grad(out, (qk, v), grad.to(out.dtype))
    return out, dqk, dv


def compare(qk, v, rotations, mask, grad, *, chunk_length, **kwargs):
    """Relative errors of (output, d qk, d v) of the kernels against the fp64 reference, for the
    reference's buckets (kwargs: the rest of lsh_attention_from_buckets', the paper's defaults
    unless given). The kernels must run, not fall back to the reference."""
    buckets = lsh.hash_buckets(qk, rotations)
    assert fast.unsupported_reason(qk, v, chunk_length=chunk_length, rounds=buckets.shape[2],
                                   **{k: w for k, w in kwargs.items()
                                      if k in ("n_chunks_before", "attend_across_buckets", "dedup")}) is None
    common = dict(chunk_length=chunk_length, n_buckets=lsh.n_buckets_of(rotations), key_padding_mask=mask, **kwargs)
    got = forward_backward(fast.lsh_attention_from_buckets, qk, v, buckets, grad, **common)
    want = forward_backward(lsh.lsh_attention_from_buckets, qk.double(), v.double(), buckets, grad.double(), **common)
    assert got[0].dtype == v.dtype and got[0].shape == v.shape
    assert got[1].dtype == qk.dtype and got[2].dtype == v.dtype
    return [rel_err(g, w) for g, w in zip(got, want)]


# (length, chunk, bucket factors, rounds, causal, wrap, n_chunks_before, padding, d_head):
# lengths that are and are not multiples of the chunk, a chunk longer than the sequence, a chunk
# that is not a power of two, a window that holds its own chunk twice (wrap over two chunks),
# factorised buckets, 1-3 rounds, look-back 0-2, a key padding mask, a head size that is not a
# power of two. Each case runs under one of RULES, in rotation (the interpreter is slow); MORE adds
# the paper's defaults and the correction across buckets where they meet the corner cases.
CASES = [
    (13, 4, [4], 2, True, False, 1, False, 8),
    (12, 4, [4], 1, True, False, 1, False, 8),
    (13, 4, [2, 4], 3, False, True, 1, True, 8),
    (7, 3, [6], 2, True, True, 2, True, 8),
    (5, 8, [2], 2, True, False, 0, False, 8),
    (8, 4, [2], 1, False, True, 2, False, 8),
    (20, 4, [4], 3, True, False, 2, True, 6),
    (37, 8, [8], 2, True, False, 1, True, 16),
    (30, 16, [4], 1, False, False, 1, False, 32),
]


# Under the interpreter these run in fp32 against the 1e-4 bound. On a GPU they run in fp16 (bound
# 1e-2): there they check that the odd shapes lower correctly (tiles padded to 16, masks), and fp16
# kernels compile in a second where fp32 ones take tens (the fp32 bound is checked at realistic
# sizes by test_gpu_matches_the_reference).
SMALL_DTYPE, SMALL_BOUND = (torch.float16, 1e-2) if CUDA else (torch.float32, 1e-4)


def case_id(case, rule) -> str:
    return (f"L{case[0]}-c{case[1]}-R{case[3]}-{'causal' if case[4] else 'full'}"
            f"{'-wrap' if case[5] else ''}-nb{case[6]}{'-pad' if case[7] else ''}-{rule_id(rule)}")


# the rotation gives CASES[i] RULES[(i + 3) % 4], so that the paper's defaults meet the window that
# holds its own chunk twice (case 5: the correction counts a key twice in one round)
ROTATION = [(case, RULES[(i + 3) % len(RULES)]) for i, case in enumerate(CASES)]
MORE = [
    (CASES[2], PAPER),  # wrap-around over 3 rounds, padding, factorised buckets
    (CASES[7], PAPER),  # padding, a longer sequence, d_head 16
    (CASES[3], RULES[3]),  # across buckets with the correction: the window reaches the previous round
    (CASES[5], RULES[3]),  # ... and holds its own chunk twice
]


@pytest.mark.parametrize("case, rule", ROTATION + MORE, ids=[case_id(c, r) for c, r in ROTATION + MORE])
def test_matches_the_reference(case, rule):
    length, chunk, factors, rounds, causal, wrap, nb, padding, d = case
    heads = 2 if (case, rule) in ROTATION else 1  # MORE: one head, to spare the interpreter
    inputs = make_inputs(len(CASES) + length, 2, heads, length, d, factors, rounds, SMALL_DTYPE, padding)
    errors = compare(*inputs, chunk_length=chunk, causal=causal, wrap_lookback=wrap, n_chunks_before=nb, **rule)
    assert max(errors) <= SMALL_BOUND, errors


@pytest.mark.parametrize("dtype, bound", [(torch.bfloat16, 2e-2), (torch.float16, 2e-3)])
def test_matches_the_reference_half_precision(dtype, bound):
    """bf16 / fp16 inputs (products exact, fp32 softmax). The bf16 bound is twice the 1e-2 of
    realistic sizes: at this tiny size one element decides the maximum, and Triton's interpreter
    converts fp32 to bf16 by truncation (twice the error of the GPU's round-to-nearest)."""
    inputs = make_inputs(3, 2, 2, 37, 16, [8], 2, dtype, padding=True)
    errors = compare(*inputs, chunk_length=8, causal=True, wrap_lookback=False, n_chunks_before=1)
    assert max(errors) <= bound, errors


@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_matches_when_a_query_sees_only_itself_twice(rule):
    """Causal, wrap-around over two chunks with look-back 2: position 0's window holds itself twice
    and nothing else, so its output is exactly v_0 (without the correction the fp32 reference rounds
    -1e5 + log 2 and gives 0.998 v_0; the fp64 reference and the kernels give v_0)."""
    qk, v, rotations, _, grad = make_inputs(5, 1, 1, 8, 8, [2], 1, torch.float32)
    buckets = lsh.hash_buckets(qk, rotations)
    out = fast.lsh_attention_from_buckets(qk, v, buckets, chunk_length=4, n_buckets=2, n_chunks_before=2,
                                          wrap_lookback=True, **rule)
    assert torch.allclose(out[0, 0, 0], v[0, 0, 0], rtol=0, atol=1e-6)


def test_fused_hashing_gives_the_reference_buckets():
    """fast.hash_buckets = lsh.hash_buckets: one and several factors, column tiles (f/2 = 150 > 128),
    bf16 inputs, and ties (a zero vector: every candidate 0, the first index wins). A bucket may
    differ only where two candidates are equal to within fp32 summation order."""
    for dtype, factors in [(torch.float32, [300]), (torch.float32, [4, 6]), (torch.bfloat16, [64])]:
        qk, _, rotations, _, _ = make_inputs(7, 2, 2, 70, 16, factors, 2, dtype)
        qk[0, 0, 3] = 0
        got = fast.hash_buckets(qk, rotations)
        want = lsh.hash_buckets(qk, rotations)
        assert got.dtype == torch.int64 and got.shape == want.shape
        assert got[0, 0, :, 3].eq(0).all() and want[0, 0, :, 3].eq(0).all()
        differ = got != want
        if differ.any():  # allowed only at near-ties of the first factor's projection
            x = qk.double()
            rot = rotations[0].double()
            y = torch.einsum("bhld,hdrk->bhrlk", x, rot)
            top2 = torch.cat([y, -y], dim=-1).topk(2, dim=-1).values
            margin = (top2[..., 0] - top2[..., 1]) / x.norm(dim=-1)[:, :, None, :]
            assert (margin[differ] < 1e-5).all() and differ.float().mean() < 1e-3, (dtype, factors)


def test_fused_hashing_with_rotations_per_example():
    """Rotations `[batch, heads, d_head, rounds, f/2]`: the kernel hashes each example with its own,
    exactly as it hashes that example alone (rotations shared by a batch of one), and agrees with
    the reference (up to the rare near-tie of the test above)."""
    qk, _, shared, _, _ = make_inputs(8, 3, 2, 40, 16, [4, 6], 2, torch.float32)
    gen = torch.Generator().manual_seed(9)
    own = [torch.randn(3, *r.shape, generator=gen).to(r.device) for r in shared]
    got = fast.hash_buckets(qk, own)
    alone = torch.cat([fast.hash_buckets(qk[b : b + 1], [r[b] for r in own]) for b in range(3)])
    assert torch.equal(got, alone)
    assert not torch.equal(got, fast.hash_buckets(qk, [r[0] for r in own]))
    assert (got != lsh.hash_buckets(qk, own)).float().mean() < 1e-2


def test_lsh_attention_from_rotations_is_hash_plus_attention():
    qk, v, rotations, mask, _ = make_inputs(9, 1, 2, 24, 8, [2, 4], 2, torch.float32, padding=True)
    got = fast.lsh_attention(qk, v, rotations, chunk_length=4, key_padding_mask=mask)  # the paper's defaults
    buckets = fast.hash_buckets(qk, rotations)
    want = lsh.lsh_attention_from_buckets(qk.double(), v.double(), buckets, chunk_length=4, n_buckets=8,
                                          key_padding_mask=mask)
    assert rel_err(got, want) <= 1e-4


def test_both_rules_with_and_without_the_correction_run_in_the_kernels():
    qk, v, _, _, _ = make_inputs(2, 1, 2, 12, 8, [4], 2, torch.float32)
    for rule in RULES:
        assert fast.unsupported_reason(qk, v, chunk_length=4, rounds=2, **rule) is None, rule
    # the correction counts duplicates in fp16, exactly up to MAX_DUPLICATES
    rounds = fast.MAX_DUPLICATES // 2 + 1
    assert "dedup" in fast.unsupported_reason(qk, v, chunk_length=4, n_chunks_before=1, rounds=rounds)
    assert fast.unsupported_reason(qk, v, chunk_length=4, n_chunks_before=1, rounds=rounds, dedup=False) is None


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        (dict(probs_dropout=lambda p: p * 0.5), "dropout"),
        (dict(n_chunks_before=fast.MAX_CHUNKS_BEFORE + 1), "n_chunks_before"),
        (dict(deterministic=True), "deterministic"),
    ],
)
def test_unsupported_settings_fall_back_to_the_reference_once(kwargs, reason, caplog, monkeypatch):
    qk, v, rotations, _, _ = make_inputs(2, 1, 2, 12, 8, [4], 2, torch.float64)
    qk, v = qk.float(), v.float()
    buckets = lsh.hash_buckets(qk, rotations)
    kwargs = dict(kwargs)
    if kwargs.pop("deterministic", False):
        monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    fast._reported.clear()
    with caplog.at_level(logging.WARNING, logger="reformer"):
        for _ in range(2):
            got = fast.lsh_attention_from_buckets(qk, v, buckets, chunk_length=4, n_buckets=4, **kwargs)
    want = lsh.lsh_attention_from_buckets(qk, v, buckets, chunk_length=4, n_buckets=4, **kwargs)
    assert torch.equal(got, want)
    lines = [r.getMessage() for r in caplog.records if "fast LSH attention" in r.getMessage()]
    assert len(lines) == 1 and reason in lines[0] and "reference" in lines[0]


def test_float64_falls_back_to_the_reference():
    qk, v, rotations, _, _ = make_inputs(2, 1, 1, 8, 4, [4], 1, torch.float64)
    buckets = lsh.hash_buckets(qk, rotations)
    got = fast.lsh_attention_from_buckets(qk, v, buckets, chunk_length=4, n_buckets=4)
    assert torch.equal(got, lsh.lsh_attention_from_buckets(qk, v, buckets, chunk_length=4, n_buckets=4))
    assert fast.unsupported_reason(qk, v, chunk_length=4) is not None


def test_fast_on_cpu_is_a_user_error_in_the_model():
    if CUDA:
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="CUDA"):
        lsh_implementation("fast", torch.device("cpu"))


def test_model_with_fast_kernels_matches_the_reference_model(monkeypatch, caplog):
    """Through a whole reversible model with the paper's defaults (same-bucket rule, duplicate
    correction; hashing in the core, bucket replay in the recomputing backward): the loss and every
    parameter gradient equal those of the reference path, and the kernels ran (no fall-back)."""
    from reformer_cli.attention import lsh_core
    from reformer_cli.model.reformer import ReformerLM

    torch.manual_seed(0)
    config = LSHAttentionConfig(chunk_length=8, n_rounds=2, impl="reference")  # 3 chunks a round
    assert not config.attend_across_buckets and config.dedup  # the paper's defaults
    model = ReformerLM(ModelConfig(d_model=32, d_ff=64, n_heads=2, n_layers=2), config,
                       LayerConfig(name="reversible"), 32, 24).to(DEVICE)
    tokens = torch.randint(0, 32, (2, 24), device=DEVICE)
    weights = torch.ones(2, 24, device=DEVICE)

    def loss_and_grads():
        model.zero_grad()
        totals = model.loss(tokens, tokens, weights, seed=3)
        totals.loss_sum.backward()
        return totals.loss_sum.detach(), [p.grad.clone() for p in model.parameters()]

    want_loss, want_grads = loss_and_grads()
    monkeypatch.setattr(lsh_core, "lsh_implementation", lambda impl, device: fast.lsh_attention_from_buckets)
    monkeypatch.setattr(lsh_core, "lsh_hasher", lambda impl, device: fast.hash_buckets)
    fast._reported.clear()
    with caplog.at_level(logging.WARNING, logger="reformer"):
        got_loss, got_grads = loss_and_grads()
    assert not [r for r in caplog.records if "fast LSH attention" in r.getMessage()]
    assert rel_err(got_loss, want_loss) < 1e-5
    for got, want in zip(got_grads, want_grads):
        assert rel_err(got, want) < 1e-4


def test_hasher_follows_the_implementation(monkeypatch):
    from reformer_cli.attention import lsh_core

    assert lsh_hasher("reference", torch.device("cuda")) is lsh.hash_buckets
    assert lsh_hasher("auto", torch.device("cpu")) is lsh.hash_buckets
    monkeypatch.setattr(lsh_core, "_fast_module", lambda: (fast, None))
    assert lsh_hasher("auto", torch.device("cuda")) is fast.hash_buckets
    assert lsh_hasher("fast", torch.device("cuda")) is fast.hash_buckets


# ------------------------------------------------------------------------------------- GPU


gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")

GPU_CASES = [  # (batch, length, rounds, causal, padding, wrap, rule): realistic sizes, one length not a
    # power of two; the paper's defaults, and trax v2 / HF's semantics with and without the correction
    (2, 4096, 1, True, False, False, PAPER),
    (2, 4096, 4, True, False, False, PAPER),
    (1, 3000, 2, True, True, False, PAPER),
    (4, 1024, 8, False, False, False, PAPER),
    (2, 4096, 4, True, False, True, RULES[2]),
    (2, 4096, 4, True, False, True, RULES[3]),
]


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("case", GPU_CASES,
                         ids=lambda c: f"B{c[0]}-L{c[1]}-R{c[2]}{'-wrap' if c[5] else ''}-{rule_id(c[6])}")
@pytest.mark.parametrize("dtype, bound", [(torch.bfloat16, 1e-2), (torch.float32, 1e-4)])
def test_gpu_matches_the_reference(case, dtype, bound):
    batch, length, rounds, causal, padding, wrap, rule = case
    inputs = make_inputs(11, batch, 8, length, 64, [2 * (length // 64)], rounds, dtype, padding)
    errors = compare(*inputs, chunk_length=64, causal=causal, wrap_lookback=wrap, n_chunks_before=1, **rule)
    assert max(errors) <= bound, errors


@pytest.mark.gpu
@gpu
def test_gpu_hashing_and_the_model_core():
    qk, v, rotations, _, _ = make_inputs(12, 2, 8, 4096, 64, [128], 4, torch.bfloat16)
    got, want = fast.hash_buckets(qk, rotations), lsh.hash_buckets(qk, rotations)
    assert (got != want).float().mean() < 1e-4  # near-ties only
    core = LSHAttentionCore(LSHAttentionConfig(n_rounds=4))
    assert lsh_implementation(core.impl, qk.device) is fast.lsh_attention_from_buckets  # auto picks the kernels


def test_kernels_compile_for_hopper():
    """The interpreter does not lower the kernels; Triton's ahead-of-time compiler does, without a
    GPU: every kernel of the bf16 path must compile for sm_90 (tensor-core dots, vector loads,
    atomics) and fit in registers (the forward without spilling, the backward nearly), the attention
    kernels under the paper's defaults, across buckets without the correction, and across buckets
    with the correction and wrap-around (aot.compile_all)."""
    import os
    import subprocess
    import sys

    if CUDA:
        pytest.skip("on a GPU every other test compiles the kernels for real")
    pytest.importorskip("triton.backends.nvidia")
    from ..conftest import cli_env

    env = {k: v for k, v in cli_env().items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "reformer_cli.attention.fast.aot"], env=env,
                            capture_output=True, text=True, timeout=300, cwd=os.getcwd())
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split() for line in result.stdout.splitlines()]
    kernels = [words[0] for words in lines]
    assert len(lines) == 11, result.stdout
    assert kernels.count("lsh_forward_kernel") == 3 and kernels.count("lsh_backward_kernel") == 4, result.stdout
    paper = [line for line in result.stdout.splitlines() if "SAME_BUCKET_ONLY=True, DEDUP=True" in line]
    assert len(paper) == 3, result.stdout  # forward and both backward variants under the paper's defaults
    spills = [(words[0], words[words.index("spill") + 2]) for words in lines if "spill" in words]
    if all(n != "None" for _, n in spills):  # cuobjdump present: check the register budget
        assert all(int(n) == 0 for kernel, n in spills if kernel == "lsh_forward_kernel"), result.stdout
        assert all(int(n) <= 128 for kernel, n in spills if kernel == "lsh_backward_kernel"), result.stdout
