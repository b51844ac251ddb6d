"""Reversible layers: exact gradients (must-show 1), replayed randomness and buckets, constant memory
in depth (must-show 2)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reformer_cli.attention import registry
from reformer_cli.attention.common import MASK_VALUE, SELF_MASK_VALUE, unit_norm_keys
from reformer_cli.bench.memory import SavedBytes
from reformer_cli.model.reformer import build_model
from reformer_cli.primitives.attention_core import AttentionCore
from reformer_cli.primitives.context import ForwardContext

from ..conftest import compose

LENGTH, VOCAB = 16, 32
DROPOUT = ["model.dropout=0.2", "attention.dropout=0.1"]


def build(overrides, seed=0):
    cfg = compose(["model=tiny", "attention=full", f"task.seq_len={LENGTH}", "model.n_layers=3", *overrides])
    torch.manual_seed(seed)
    return build_model(cfg, VOCAB, cfg.task.seq_len).double().train()


def batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (2, LENGTH), generator=gen)
    targets = torch.randint(0, VOCAB, (2, LENGTH), generator=gen)
    weights = torch.rand(2, LENGTH, generator=gen, dtype=torch.float64)
    padding = torch.ones(2, LENGTH, dtype=torch.bool)
    padding[1, 4:7] = False  # keys the second sequence must not attend to
    return tokens, targets, weights * padding, padding


def gradients(model, seed=7):
    tokens, targets, weights, padding = batch()
    model.zero_grad(set_to_none=True)
    totals = model.loss(tokens, targets, weights, seed=seed, key_padding_mask=padding)
    totals.loss_sum.backward()
    return totals.loss_sum.detach(), {n: p.grad for n, p in model.named_parameters()}


def assert_same_gradients(overrides, rtol=1e-6):
    reversed_ = build(["layer=reversible", *overrides])
    plain = build(["layer=reversible", "layer.recompute=false", *overrides])
    plain.load_state_dict(reversed_.state_dict())
    loss_a, grads_a = gradients(reversed_)
    loss_b, grads_b = gradients(plain)
    assert torch.allclose(loss_a, loss_b, rtol=1e-12)
    for name, g in grads_b.items():
        assert g is not None and grads_a[name] is not None, f"{name} got no gradient"
        assert g.abs().max() > 0 and grads_a[name].abs().max() > 0, f"{name} got a zero gradient"
        err = ((grads_a[name] - g).norm() / g.norm()).item()
        assert err < rtol, f"{name}: relative error {err:.2e}"


ATTENTIONS = {
    "full": [],
    "full-shared-qk": ["attention.shared_qk=true"],
    "chunked": ["model.ff_chunks=3", "model.loss_chunks=2"],
    "local": ["attention=local", "attention.chunk_length=4", "attention.n_chunks_before=2"],
    "local+full": ["attention=local", "attention.chunk_length=4", "model.attn_layers=[local,full]"],
}


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_reversible_gradients_equal_those_without_reversal(attention):
    assert_same_gradients([*DROPOUT, *ATTENTIONS[attention]])


@pytest.mark.parametrize("rounds", [1, 2, 4])
def test_reversible_gradients_equal_with_lsh(rounds):
    pytest.importorskip("reformer_cli.attention.lsh_core")
    assert_same_gradients([*DROPOUT, "attention=lsh", f"attention.n_rounds={rounds}", "attention.chunk_length=4"])


# ---------------------------------------------------------------- bucket replay without LSH


class HashedCore(AttentionCore):
    """A test-only shared-QK core that behaves like LSH towards the replay cache: it draws a random
    projection from `ctx.generator`, hashes with a deliberately discontinuous function (the last
    mantissa bit of the projection: any rounding difference in the input flips it), attends only
    within a hash bucket, and stores / reuses its buckets under ctx.cache[(layer, "lsh_buckets")]."""

    shared_qk = True
    use_cache = True

    def __init__(self, cfg):
        self.dropout = float(cfg.dropout)

    def buckets(self, qk, ctx, layer):
        key = (layer, "lsh_buckets")
        if self.use_cache and isinstance(ctx.cache, dict) and key in ctx.cache:
            return ctx.cache[key]
        gen = ctx.generator(qk.device, layer, "rotations")
        r = torch.randn(qk.shape[-1], generator=gen, dtype=qk.dtype).to(qk.device)
        mantissa, _ = torch.frexp(qk.detach() @ r)
        buckets = (mantissa.abs() * 2.0**53).long() % 2
        if self.use_cache and isinstance(ctx.cache, dict):
            ctx.cache[key] = buckets
        return buckets

    def __call__(self, q, k, v, ctx, layer, key_padding_mask=None):
        b = self.buckets(q, ctx, layer)
        length = q.shape[-2]
        logits = q @ unit_norm_keys(q).transpose(-1, -2)
        pos = torch.arange(length, device=q.device)
        allowed = (b[..., :, None] == b[..., None, :]) & (pos[None, :] <= pos[:, None])
        if key_padding_mask is not None:
            allowed = allowed & key_padding_mask[:, None, None, :]
        logits = logits.masked_fill(~allowed, MASK_VALUE)
        logits = logits.masked_fill(torch.eye(length, dtype=torch.bool), SELF_MASK_VALUE)
        probs = torch.softmax(logits, dim=-1)
        drop = self.probs_dropout(ctx, self.dropout, layer)
        return (drop(probs) if drop else probs) @ v


@pytest.fixture
def hashed_core():
    full = registry.spec_of("full")
    registry.register(dataclasses.replace(full, build_core=HashedCore))  # attention=full builds it
    yield HashedCore
    registry.register(full)
    HashedCore.use_cache = True


def test_replay_cache_makes_a_discontinuous_hash_exact(hashed_core):
    overrides = [*DROPOUT, "attention.shared_qk=true"]
    assert_same_gradients(overrides)
    hashed_core.use_cache = False  # rehash the reconstructed inputs: buckets flip, gradients differ
    with pytest.raises(AssertionError, match="relative error"):
        assert_same_gradients(overrides)


def test_key_padding_mask_reaches_every_recomputation():
    model = build(["layer=reversible"])
    tokens, targets, weights, padding = batch()
    masked = model.loss(tokens, targets, weights, key_padding_mask=padding).loss_sum
    unmasked = model.loss(tokens, targets, weights).loss_sum
    assert not torch.allclose(masked, unmasked)  # the mask matters, so the equality tests see it


# ---------------------------------------------------------------- randomness, precision


def test_reversible_step_leaves_global_rng_alone():
    model = build(["layer=reversible", *DROPOUT, "model.ff_chunks=2"])
    cpu_state = torch.get_rng_state()
    gradients(model)
    assert torch.equal(torch.get_rng_state(), cpu_state)


def bf16_step(*overrides):
    cfg = compose(["model=tiny", "attention=full", "task.seq_len=64", "layer=reversible", "model.n_layers=6", "model.ff_chunks=2",
                   *DROPOUT, *overrides])
    torch.manual_seed(0)
    model = build_model(cfg, VOCAB, cfg.task.seq_len).train()  # fp32 weights, bf16 autocast: the GPU setting
    dtypes = []  # the output dtype of every attention / feed-forward output projection call
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not model.head:
            module.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    tokens = torch.randint(0, VOCAB, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        streams = model.features(tokens, ForwardContext(seed=3, training=True))
        loss = model.loss(tokens, tokens, torch.ones(2, 64), seed=3).loss_sum
    calls_in_forward = len(dtypes)
    loss.backward()  # outside autocast, as the trainer does: the backward re-enters it itself
    grads = {n: p.grad for n, p in model.named_parameters()}
    return streams.dtype, dtypes, calls_in_forward, grads


def test_bf16_autocast_streams_stay_fp32_and_the_backward_recomputes_in_bf16():
    stream_dtype, dtypes, calls_in_forward, grads = bf16_step()
    _, _, _, reference = bf16_step("layer.recompute=false")
    assert stream_dtype == torch.float32  # the residual streams X1, X2 are never bf16
    assert len(dtypes) > calls_in_forward  # the backward recomputed the layers ...
    assert set(dtypes) == {torch.bfloat16}  # ... under the forward's autocast
    for name, g in reference.items():  # bf16 rounding differs where a reconstruction flips a bf16 digit
        err = ((grads[name] - g).norm() / g.norm()).item()
        assert err < 1e-2, f"{name}: relative error {err:.2e}"


# ---------------------------------------------------------------- memory (must-show 2)


def saved_bytes(layer, depth):
    cfg = compose(["model=tiny", "attention=full", "task.seq_len=64", f"layer={layer}", f"model.n_layers={depth}",
                   "model.d_model=32", "model.d_ff=64"])
    torch.manual_seed(0)
    model = build_model(cfg, VOCAB, cfg.task.seq_len).train()
    tokens = torch.randint(0, VOCAB, (1, 64))
    with SavedBytes(exclude=model.parameters()) as meter:
        totals = model.loss(tokens, tokens, torch.ones(1, 64))
    totals.loss_sum.backward()
    return meter.total


def test_reversible_memory_does_not_grow_with_depth():
    standard = {d: saved_bytes("standard", d) for d in (2, 12)}
    reversible = {d: saved_bytes("reversible", d) for d in (2, 12)}
    assert reversible[12] <= 1.1 * reversible[2]
    assert standard[12] > 4 * standard[2]
    assert reversible[2] < standard[2]


# ---------------------------------------------------------------- DistributedDataParallel


def test_reversible_gradients_under_ddp(tmp_path):
    """Parameter gradients leave the custom backward through autograd (not written to .grad), so
    DDP's per-parameter hooks fire once each: no "marked ready twice", same gradients."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("no gloo backend")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = build(["layer=reversible", *DROPOUT, "model.ff_chunks=2"])
        plain = build(["layer=reversible", "layer.recompute=false", *DROPOUT, "model.ff_chunks=2"])
        plain.load_state_dict(model.state_dict())
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        tokens = batch()[0]
        for step in range(2):
            model.zero_grad(set_to_none=True)
            plain.zero_grad(set_to_none=True)
            ddp(tokens, seed=step).logsumexp(-1).sum().backward()
            plain(tokens, seed=step).logsumexp(-1).sum().backward()
            for p, q in zip(model.parameters(), plain.parameters()):
                assert torch.allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12)
    finally:
        dist.destroy_process_group()
