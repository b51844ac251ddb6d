"""LSH attention (docs/lsh-attention.md) against a brute force built from first principles, and its
properties: one chunk = full shared-QK attention, no causal leak, gradients, the model core."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from reformer_cli.attention import hash_buckets, lsh_attention, lsh_attention_from_buckets, shared_qk_full_attention
from reformer_cli.attention.lsh import n_buckets_of

from .lsh_brute_force import brute_buckets, brute_lsh, union_softmax

# (length, chunk_length, bucket factors): lengths that are and are not multiples of the chunk,
# one and several factors, a single chunk (wrap-around then revisits the same chunk).
SHAPES = [(12, 4, [4]), (13, 4, [2, 4]), (7, 3, [6]), (5, 8, [2]), (10, 4, [2, 2, 2])]
# causal, dedup, wrap, nb, across (False: the paper's same-bucket rule; True: trax v2 / HF)
SETTINGS = list(itertools.product([True, False], [False, True], [False, True], [0, 1, 2], [False, True]))


def random_inputs(seed, length, factors, rounds, batch=2, heads=2, d=4, padding=False, ties=False):
    """fp64 inputs. ties: integer-valued vectors and rotations with a repeated column, and one zero
    vector per row, so that the hash's argmax meets exact ties (first index wins)."""
    gen = torch.Generator().manual_seed(seed)
    qk = torch.randn(batch, heads, length, d, generator=gen, dtype=torch.float64)
    v = torch.randn(batch, heads, length, d, generator=gen, dtype=torch.float64)
    rotations = [torch.randn(heads, d, rounds, f // 2, generator=gen, dtype=torch.float64) for f in factors]
    if ties:
        qk = qk.mul(1.5).round()
        qk[:, :, length // 2] = 0
        rotations = [r.round() for r in rotations]
        for r in rotations:
            if r.shape[-1] > 1:
                r[..., 1] = r[..., 0]
    mask = None
    if padding:
        mask = torch.rand(batch, length, generator=gen) > 0.25
        mask[:, 0] = True
    return qk, v, rotations, mask


def real_positions(mask, length):
    return np.ones((1, length), bool) if mask is None else mask.numpy()


@pytest.mark.parametrize("index, setting", list(enumerate(SETTINGS)))
def test_matches_brute_force(index, setting):
    """Random inputs over (length, chunk, buckets, 1-8 rounds, causal, dedup, wrap,
    n_chunks_before, padding, ties in the hash) under both bucket rules, fp64, max abs error < 1e-9."""
    causal, dedup, wrap, nb, across = setting
    for k in range(3):
        length, chunk, factors = SHAPES[(index + k) % len(SHAPES)]
        rounds = 1 + (3 * index + k) % 8
        qk, v, rotations, mask = random_inputs(100 * index + k, length, factors, rounds, padding=k == 2,
                                               ties=k == 1)
        kwargs = dict(chunk_length=chunk, causal=causal, n_chunks_before=nb, dedup=dedup, across=across)
        got = lsh_attention(qk, v, rotations, wrap_lookback=wrap, key_padding_mask=mask,
                            attend_across_buckets=kwargs.pop("across"), **kwargs)
        want, _ = brute_lsh(qk.numpy(), v.numpy(), [r.numpy() for r in rotations], wrap=wrap, across=across,
                            key_padding_mask=None if mask is None else mask.numpy(), **kwargs)
        real = real_positions(mask, length)
        for b in range(qk.shape[0]):
            sel = real[b % real.shape[0]]
            err = np.abs(got.numpy()[b][:, sel] - want[b][:, sel]).max()
            assert err < 1e-9, (length, chunk, factors, rounds, setting, err)


@pytest.mark.parametrize("dedup, across", list(itertools.product([False, True], [False, True])))
def test_matches_brute_force_when_a_window_holds_a_chunk_twice(dedup, across):
    """Two chunks in all, look-back 2 with wrap-around: the window is chunks (g, g-1, g), so the
    own chunk's keys count twice and the other chunk's once (the multiset of the docstring)."""
    qk, v, rotations, _ = random_inputs(11, 8, [2], rounds=1)
    kwargs = dict(chunk_length=4, causal=False, n_chunks_before=2, dedup=dedup)
    got = lsh_attention(qk, v, rotations, wrap_lookback=True, attend_across_buckets=across, **kwargs)
    want, _ = brute_lsh(qk.numpy(), v.numpy(), [r.numpy() for r in rotations], wrap=True, across=across,
                        **kwargs)
    assert np.abs(got.numpy() - want).max() < 1e-9
    once = lsh_attention(qk, v, rotations, wrap_lookback=True, attend_across_buckets=across,
                         **{**kwargs, "n_chunks_before": 1})
    assert (np.abs(got.numpy() - once.numpy()).max() < 1e-12) == dedup  # dedup: a set again


@pytest.mark.parametrize(
    "wrap, nb, shape, across, differs",
    [(False, 1, SHAPES[0], True, True), (True, 1, SHAPES[1], True, True), (False, 2, SHAPES[4], True, True),
     (True, 2, SHAPES[3], True, False),  # one chunk per round: every key equally often, dedup is a no-op
     (False, 1, SHAPES[0], False, True), (True, 2, SHAPES[1], False, True), (False, 2, SHAPES[4], False, True)],
)
def test_dedup_is_the_softmax_over_the_union_of_rounds(wrap, nb, shape, across, differs):
    """With dedup, the merged rounds equal one softmax over P_i = U_r P_i^(r) (paper eq. 11),
    even where wrap-around puts a key twice into one window; under both bucket rules."""
    length, chunk, factors = shape
    qk, v, rotations, _ = random_inputs(7, length, factors, rounds=3)
    kwargs = dict(chunk_length=chunk, n_chunks_before=nb, wrap_lookback=wrap, attend_across_buckets=across)
    got = lsh_attention(qk, v, rotations, dedup=True, **kwargs)
    _, attended = brute_lsh(qk.numpy(), v.numpy(), [r.numpy() for r in rotations], chunk_length=chunk,
                            causal=True, n_chunks_before=nb, wrap=wrap, dedup=True, across=across)
    want = union_softmax(qk.numpy(), v.numpy(), attended)
    assert np.abs(got.numpy() - want).max() < 1e-9
    without = lsh_attention(qk, v, rotations, dedup=False, **kwargs)
    assert (np.abs(without.numpy() - want).max() > 1e-6) == differs  # duplicates change the plain merge


def test_hash_buckets_match_brute_force():
    for factors in ([8], [2, 4], [4, 2, 6]):
        qk, _, rotations, _ = random_inputs(3, 9, factors, rounds=3)
        buckets = hash_buckets(qk, rotations)
        assert buckets.shape == (2, 2, 3, 9) and buckets.dtype == torch.int64
        assert 0 <= buckets.min() and buckets.max() < n_buckets_of(rotations)
        for b, h, r, p in itertools.product(range(2), range(2), range(3), range(9)):
            want = brute_buckets(qk[b, h, p].numpy(), [rot[h].numpy() for rot in rotations], r)
            assert buckets[b, h, r, p] == want


@pytest.mark.parametrize("factors", [[8], [2, 4]])
def test_per_example_rotations_hash_each_example_with_its_own(factors):
    """Rotations `[batch, heads, d_head, rounds, f/2]`: each example hashes as it does alone with its
    own rotations (brute force, fp64); with the same rotations in every example, as shared ones."""
    qk, _, shared, _ = random_inputs(5, 9, factors, rounds=3, batch=3)
    gen = torch.Generator().manual_seed(6)
    own = [torch.randn(3, *r.shape, generator=gen, dtype=torch.float64) for r in shared]
    buckets = hash_buckets(qk, own)
    assert buckets.shape == (3, 2, 3, 9) and buckets.dtype == torch.int64
    for b in range(3):
        assert torch.equal(buckets[b : b + 1], hash_buckets(qk[b : b + 1], [r[b] for r in own]))
        for h, r, p in itertools.product(range(2), range(3), range(9)):
            assert buckets[b, h, r, p] == brute_buckets(qk[b, h, p].numpy(), [rot[b, h].numpy() for rot in own], r)
    assert not torch.equal(buckets, hash_buckets(qk, [r[0] for r in own]))  # example 0's are not everyone's
    repeated = [r.expand(3, *r.shape) for r in shared]
    assert torch.equal(hash_buckets(qk, repeated), hash_buckets(qk, shared))


def test_hashing_is_angular_and_gradient_free():
    qk, _, rotations, _ = random_inputs(4, 16, [8], rounds=2)
    scaled = qk * torch.rand(2, 2, 16, 1, dtype=torch.float64).add(0.1) * 10
    assert torch.equal(hash_buckets(qk, rotations), hash_buckets(scaled, rotations))
    assert not hash_buckets(qk.requires_grad_(), rotations).requires_grad


@pytest.mark.parametrize(
    "causal, rounds, dedup, wrap, nb, padding",
    [(True, 1, False, False, 1, False), (False, 2, True, False, 0, False), (True, 3, True, True, 2, True),
     (False, 1, False, True, 1, True), (True, 2, False, True, 0, False)],
)
def test_one_chunk_equals_full_shared_qk_attention(causal, rounds, dedup, wrap, nb, padding):
    """One bucket and one chunk covering the sequence is full shared-QK attention with the self
    mask (and so is any hashing when a chunk covers the sequence and attends across buckets)."""
    length = 11
    qk, v, rotations, mask = random_inputs(5, length, [6], rounds, padding=padding)
    full = shared_qk_full_attention(qk, v, causal=causal, key_padding_mask=mask)
    kwargs = dict(causal=causal, n_chunks_before=nb, wrap_lookback=wrap, dedup=dedup, key_padding_mask=mask)
    one_bucket = torch.zeros(2, 2, rounds, length, dtype=torch.long)
    a = lsh_attention_from_buckets(qk, v, one_bucket, chunk_length=length, n_buckets=1, **kwargs)
    b = lsh_attention(qk, v, rotations, chunk_length=16, attend_across_buckets=True, **kwargs)
    real = real_positions(mask, length)
    for out in (a, b):
        for i in range(2):
            sel = real[i % real.shape[0]]
            assert (out[i][:, sel] - full[i][:, sel]).abs().max() < 1e-12


@pytest.mark.parametrize("index, setting", [(i, s) for i, s in enumerate(SETTINGS) if s[0]])
def test_no_causal_leak(index, setting):
    """d out_i / d input_j == 0 exactly for every j > i, for every setting."""
    _, dedup, wrap, nb, across = setting
    length, chunk, factors = SHAPES[index % len(SHAPES)]
    qk, v, rotations, _ = random_inputs(index, length, factors, rounds=1 + index % 3, batch=1)
    qk.requires_grad_(), v.requires_grad_()
    out = lsh_attention(qk, v, rotations, chunk_length=chunk, n_chunks_before=nb, wrap_lookback=wrap, dedup=dedup,
                        attend_across_buckets=across)
    for i in range(length):
        g_qk, g_v = torch.autograd.grad(out[:, :, i].sum(), [qk, v], retain_graph=True)
        assert torch.all(g_qk[:, :, i + 1:] == 0) and torch.all(g_v[:, :, i + 1:] == 0), (i, setting)
        assert g_v[:, :, : i + 1].abs().sum() > 0


@pytest.mark.parametrize("dedup, wrap, across", [(False, False, True), (True, True, True), (True, False, False),
                                                 (False, True, False), (True, True, False)])
def test_gradients_match_finite_differences(dedup, wrap, across):
    qk, v, rotations, mask = random_inputs(9, 7, [4], rounds=2, batch=1, heads=1, d=3, padding=True)
    buckets = hash_buckets(qk, rotations)

    def f(qk, v):
        return lsh_attention_from_buckets(qk, v, buckets, chunk_length=3, n_buckets=4, dedup=dedup,
                                          wrap_lookback=wrap, key_padding_mask=mask,
                                          attend_across_buckets=across)

    assert torch.autograd.gradcheck(f, (qk.requires_grad_(), v.requires_grad_()))


def test_low_precision_inputs_are_computed_in_fp32():
    qk, v, rotations, _ = random_inputs(2, 12, [4], rounds=2)
    buckets = hash_buckets(qk, rotations)
    ref = lsh_attention_from_buckets(qk, v, buckets, chunk_length=4, n_buckets=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lsh_attention_from_buckets(qk.bfloat16(), v.bfloat16(), buckets, chunk_length=4, n_buckets=4)
    assert out.dtype == torch.bfloat16
    assert (out.double() - ref).abs().max() < 0.05


@pytest.mark.parametrize("wrap, across", list(itertools.product([False, True], [False, True])))
def test_each_query_reads_exactly_its_attended_keys(wrap, across):
    """The keys whose values reach out_i (non-zero d out_i / d v_j) are exactly the union of the
    brute force's attended sets (the query itself aside); under the paper's rule that union leaves out window keys of other
    buckets, which attention across buckets reads."""
    length, chunk, factors = 16, 4, [4]
    qk, v, rotations, _ = random_inputs(21, length, factors, rounds=2, batch=1, heads=1)
    v.requires_grad_()
    out = lsh_attention(qk, v, rotations, chunk_length=chunk, wrap_lookback=wrap, attend_across_buckets=across)
    _, attended = brute_lsh(qk.numpy(), v.detach().numpy(), [r.numpy() for r in rotations], chunk_length=chunk,
                            causal=True, n_chunks_before=1, wrap=wrap, dedup=True, across=across)
    _, window = brute_lsh(qk.numpy(), v.detach().numpy(), [r.numpy() for r in rotations], chunk_length=chunk,
                          causal=True, n_chunks_before=1, wrap=wrap, dedup=True, across=True)
    smaller = 0
    for i in range(length):
        (g,) = torch.autograd.grad(out[0, 0, i].sum(), [v], retain_graph=True)
        read = set(torch.nonzero(g[0, 0].abs().sum(-1)).flatten().tolist())
        assert read - {i} == attended[0][0][i] - {i}, i  # the self logit (-1e5) weighs exp(-1e5) = 0
        smaller += len(attended[0][0][i]) < len(window[0][0][i])
    assert (smaller > 0) == (not across)
