"""Chunked feed-forward and chunked output+loss: identical to unchunked, and they lower memory
(must-show 3)."""

from __future__ import annotations

import pytest
import torch

from reformer_cli.bench.memory import SavedBytes
from reformer_cli.model.reformer import build_model
from reformer_cli.primitives.context import ForwardContext

from ..conftest import compose

LENGTH = 32


def build(*overrides, vocab=64):
    cfg = compose(["model=tiny", "attention=full", f"task.seq_len={LENGTH}", "model.d_model=32", "model.d_ff=128", *overrides])
    torch.manual_seed(0)
    return build_model(cfg, vocab, cfg.task.seq_len).double().train()


def loss_and_grads(model, vocab=64):
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, vocab, (2, LENGTH), generator=gen)
    targets = torch.randint(0, vocab, (2, LENGTH), generator=gen)
    weights = torch.rand(2, LENGTH, generator=gen, dtype=torch.float64)
    model.zero_grad(set_to_none=True)
    totals = model.loss(tokens, targets, weights, seed=3)
    totals.loss_sum.backward()
    return totals, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "layer, chunks",
    [
        ("standard", ["model.ff_chunks=4"]),
        ("standard", ["model.loss_chunks=3"]),
        ("reversible", ["model.ff_chunks=5", "model.loss_chunks=4"]),  # uneven chunks: 32 = 4 * 7 + 4
    ],
)
def test_chunking_gives_the_same_loss_and_gradients(layer, chunks):
    plain = build(f"layer={layer}")
    chunked = build(f"layer={layer}", *chunks)
    chunked.load_state_dict(plain.state_dict())
    a, grads_a = loss_and_grads(plain)
    b, grads_b = loss_and_grads(chunked)
    assert torch.allclose(a.loss_sum, b.loss_sum, rtol=1e-12)
    assert torch.equal(a.correct_sum, b.correct_sum) and torch.allclose(a.weight_sum, b.weight_sum, rtol=1e-12)
    for name, g in grads_a.items():
        assert torch.allclose(g, grads_b[name], rtol=1e-10, atol=1e-13), name


def test_recomputed_chunks_replay_dropout():
    """With dropout, the recomputing Function equals the same chunks under ordinary autograd."""
    model = build("model.ff_chunks=4", "model.dropout=0.3")
    sublayer = model.stack.blocks[0].feedforward
    x = torch.randn(2, LENGTH, 32, dtype=torch.float64, requires_grad=True)
    ctx = ForwardContext(seed=5, training=True)
    out = sublayer(x, ctx)
    reference = torch.cat([sublayer.chunk(piece, ctx, k) for k, piece in enumerate(x.chunk(4, dim=1))], dim=1)
    assert torch.equal(out, reference)
    upstream = torch.randn_like(out)
    params = [x, *sublayer.parameters()]
    got = torch.autograd.grad(out, params, upstream)
    want = torch.autograd.grad(reference, params, upstream)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-12, atol=1e-14)


def saved_bytes(*overrides, vocab=64):
    model = build(*overrides, vocab=vocab).float()
    tokens = torch.randint(0, vocab, (1, LENGTH))
    with SavedBytes(exclude=model.parameters()) as meter:
        totals = model.loss(tokens, tokens, torch.ones(1, LENGTH))
    totals.loss_sum.backward()
    return meter.total


def test_chunked_feedforward_saves_less():
    assert saved_bytes("model.ff_chunks=4") < 0.8 * saved_bytes()


def test_chunked_loss_saves_less():
    vocab = 1024  # the logits dominate, as with a large vocabulary
    assert saved_bytes("model.loss_chunks=4", vocab=vocab) < 0.5 * saved_bytes(vocab=vocab)


@pytest.mark.gpu
def test_chunking_lowers_the_cuda_peak():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from reformer_cli.bench.memory import Setting, measure

    device = torch.device("cuda")
    plain = measure(Setting(d_model=256, d_ff=4096, vocab=8192, length=2048), "reversible", 2, device, "fp32")
    chunked = measure(Setting(d_model=256, d_ff=4096, vocab=8192, length=2048, ff_chunks=8, loss_chunks=8),
                      "reversible", 2, device, "fp32")
    assert chunked.peak_bytes < plain.peak_bytes
