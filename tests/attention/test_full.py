"""Full attention in both forms against brute force, and no causal leak."""

from __future__ import annotations

import math

import pytest
import torch

from reformer_cli.attention.common import SELF_MASK_VALUE
from reformer_cli.attention.full import full_attention, shared_qk_full_attention


def brute_force(q, k, v, causal, shared_qk, self_mask=True):
    """Each query's attended set and logits built explicitly, one query at a time."""
    b, h, length, d = q.shape
    out = torch.zeros_like(v)
    for bi in range(b):
        for hi in range(h):
            for i in range(length):
                keys = [j for j in range(length) if not causal or j <= i]
                logits = []
                for j in keys:
                    if shared_qk:
                        kj = q[bi, hi, j] / q[bi, hi, j].norm()
                        masked = self_mask and j == i
                        logits.append(SELF_MASK_VALUE if masked else float(q[bi, hi, i] @ kj))
                    else:
                        logits.append(float(q[bi, hi, i] @ k[bi, hi, j]) / math.sqrt(d))
                w = torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=0)
                out[bi, hi, i] = sum(wj * v[bi, hi, j] for wj, j in zip(w, keys))
    return out


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shared_qk", [True, False])
def test_matches_brute_force(causal, shared_qk):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 9, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    if shared_qk:
        got = shared_qk_full_attention(q, v, causal=causal)
    else:
        got = full_attention(q, k, v, causal=causal)
    want = brute_force(q, k, v, causal, shared_qk)
    assert (got - want).abs().max() < 1e-12


@pytest.mark.parametrize("causal", [True, False])
def test_without_self_mask_matches_brute_force(causal):
    gen = torch.Generator().manual_seed(1)
    qk, v = (torch.randn(2, 2, 9, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    got = shared_qk_full_attention(qk, v, causal=causal, self_mask=False)
    want = brute_force(qk, None, v, causal, shared_qk=True, self_mask=False)
    assert (got - want).abs().max() < 1e-12
    # unit-norm keys: a query's own logit ||q_i|| is its largest, so it gets the largest weight
    masked = shared_qk_full_attention(qk, v, causal=causal)
    assert (got - masked).abs().max() > 1e-3


def test_first_token_attends_to_itself_despite_self_mask():
    qk, v = torch.randn(1, 1, 5, 4, dtype=torch.float64), torch.randn(1, 1, 5, 4, dtype=torch.float64)
    out = shared_qk_full_attention(qk, v, causal=True)
    assert torch.allclose(out[0, 0, 0], v[0, 0, 0])


@pytest.mark.parametrize("shared_qk", [True, False])
def test_no_causal_leak(shared_qk):
    length = 8
    q = torch.randn(1, 2, length, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, length, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, length, 4, dtype=torch.float64, requires_grad=True)
    for i in range(length):
        out = shared_qk_full_attention(q, v, causal=True) if shared_qk else full_attention(q, k, v, causal=True)
        grads = torch.autograd.grad(out[:, :, i].sum(), [q, k, v], allow_unused=True)
        for g in grads:
            if g is not None:
                assert torch.all(g[:, :, i + 1 :] == 0)


def test_key_padding_excludes_keys():
    qk, v = torch.randn(1, 1, 6, 4, dtype=torch.float64), torch.randn(1, 1, 6, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, False, False]])
    out = shared_qk_full_attention(qk, v, causal=False, key_padding_mask=mask)
    ref = shared_qk_full_attention(qk[:, :, :4], v[:, :, :4], causal=False)
    assert torch.allclose(out[:, :, :4], ref)


def test_raw_shared_keys_are_scaled_dot_product_attention_with_k_equal_q():
    """The Table 2 diagnostic `shared_qk_keys=raw`, self logit kept: softmax(q q^T / sqrt(d)) v,
    exactly what PyTorch's own scaled dot-product attention gives for k = q."""
    gen = torch.Generator().manual_seed(3)
    q, v = (torch.randn(2, 2, 9, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    for causal in (True, False):
        got = shared_qk_full_attention(q, v, causal=causal, self_mask=False, keys="raw")
        want = torch.nn.functional.scaled_dot_product_attention(q, q, v, is_causal=causal)
        assert (got - want).abs().max() < 1e-12


@pytest.mark.parametrize("keys, mode", [("unit", "replace"), ("raw", "replace"), ("unit", "add"), ("raw", "add")])
def test_self_mask_value_replaces_or_is_added_to_the_own_logit(keys, mode):
    gen = torch.Generator().manual_seed(4)
    q, v = (torch.randn(1, 2, 7, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    got = shared_qk_full_attention(q, v, causal=True, keys=keys, self_mask_value=-3.0, self_mask_mode=mode)
    k = q / q.norm(dim=-1, keepdim=True) if keys == "unit" else q / math.sqrt(4)
    logits = q @ k.transpose(-1, -2)
    eye = torch.eye(7, dtype=torch.bool)
    logits = logits.masked_fill(eye, -3.0) if mode == "replace" else logits - 3.0 * eye
    logits = logits.masked_fill(~torch.ones(7, 7, dtype=torch.bool).tril(), float("-inf"))
    assert (got - torch.softmax(logits, dim=-1) @ v).abs().max() < 1e-12


@pytest.mark.parametrize("overrides", [
    ["attention=full", "attention.shared_qk=true", "attention.self_mask=false"],
    ["attention=full", "attention.shared_qk=true", "attention.self_mask_mode=add", "attention.self_mask_value=-2"],
    ["attention=full", "attention.shared_qk=true", "attention.shared_qk_keys=raw", "attention.self_mask_value=-1e4"],
    ["attention=lsh", "attention.chunk_length=4", "attention.n_rounds=3"],
    ["attention=lsh", "attention.chunk_length=4", "attention.n_rounds=2", "attention.attend_across_buckets=true",
     "attention.dedup=false", "attention.wrap_lookback=true"],
])
def test_self_weights_are_the_diagonal_of_the_attention(overrides):
    """attention/self_weight.py reads p_ii by probing with one-hot values; here p_ii is the
    diagonal of the Jacobian d out_i / d v_i, taken by autograd (length 20 > d_head 8: three probes)."""
    from reformer_cli.attention.registry import build_attention_core
    from reformer_cli.attention.self_weight import self_weights
    from reformer_cli.primitives.context import ForwardContext

    from ..conftest import compose

    core = build_attention_core(compose(overrides).attention)
    gen = torch.Generator().manual_seed(5)
    q, v = (torch.randn(2, 2, 20, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    ctx = ForwardContext(seed=7)
    got = self_weights(core, q, None, v, ctx, 0)
    v.requires_grad_()
    out = core(q, None, v, ctx, 0)
    for i in range(20):
        (g,) = torch.autograd.grad(out[:, :, i, 0].sum(), v, retain_graph=True)
        assert (got[:, :, i] - g[:, :, i, 0]).abs().max() < 1e-6, i
    assert got.max() > 1e-3  # not all zero: some query puts weight on itself
