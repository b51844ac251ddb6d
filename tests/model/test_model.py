"""ReformerLM: causal, replayable randomness, chunking identical to no chunking, attention swap."""

from __future__ import annotations

import pytest
import torch

from reformer_cli.errors import UserError
from reformer_cli.model.reformer import build_model
from reformer_cli.primitives.context import ForwardContext

from ..conftest import compose


def tiny_model(*overrides):
    cfg = compose(["model=tiny", "attention=full", "task.seq_len=16", *overrides])
    torch.manual_seed(0)
    return build_model(cfg, 128, cfg.task.seq_len).double(), cfg


def test_model_is_causal():
    model, _ = tiny_model()
    model.eval()
    tokens = torch.randint(0, 128, (2, 16))
    changed = tokens.clone()
    changed[:, 9:] = torch.randint(0, 128, (2, 7))
    a, b = model(tokens), model(changed)
    assert torch.equal(a[:, :9], b[:, :9])
    assert not torch.equal(a[:, 9:], b[:, 9:])


@pytest.mark.parametrize("override", ["model.loss_chunks=4", "model.ff_chunks=4"])
def test_chunking_is_numerically_identical(override):
    plain, _ = tiny_model()
    chunked, _ = tiny_model(override)
    chunked.load_state_dict(plain.state_dict())
    tokens, targets = torch.randint(0, 128, (2, 16)), torch.randint(0, 128, (2, 16))
    weights = torch.rand(2, 16)
    a = plain.loss(tokens, targets, weights)
    b = chunked.loss(tokens, targets, weights)
    assert torch.allclose(a.loss_sum, b.loss_sum, rtol=1e-12)
    assert torch.equal(a.correct_sum, b.correct_sum)
    ga = torch.autograd.grad(a.loss_sum, list(plain.parameters()))
    gb = torch.autograd.grad(b.loss_sum, list(chunked.parameters()))
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-12)


def test_dropout_is_replayable_and_leaves_global_rng_alone():
    x = torch.ones(4, 64)
    before = torch.get_rng_state()
    a = ForwardContext(seed=3, training=True).dropout(x, 0.5, 0, "ff")
    b = ForwardContext(seed=3, training=True).dropout(x, 0.5, 0, "ff")
    c = ForwardContext(seed=4, training=True).dropout(x, 0.5, 0, "ff")
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(ForwardContext(seed=3, training=False).dropout(x, 0.5, 0), x)


def test_training_forward_depends_only_on_seed():
    model, _ = tiny_model("model.dropout=0.3")
    model.train()
    tokens = torch.randint(0, 128, (2, 16))
    assert torch.equal(model(tokens, seed=1), model(tokens, seed=1))
    assert not torch.equal(model(tokens, seed=1), model(tokens, seed=2))


def test_swapping_to_shared_qk_attention_needs_shared_qk_weights():
    model, cfg = tiny_model()  # full attention with separate Q and K
    shared = compose(["attention=full", "attention.shared_qk=true"]).attention
    with pytest.raises(UserError, match="shared-QK"):
        model.set_attention(shared)
    model2, _ = tiny_model("attention.shared_qk=true")
    model2.set_attention(compose(["attention=full", "attention.shared_qk=true", "attention.causal=true"]).attention)
