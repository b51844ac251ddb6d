"""The LSH core inside the model: it computes the function form with rotations from the run's
generator, replays cached buckets, picks its implementation, and keeps the model causal."""

from __future__ import annotations

import types

import pytest
import torch

from reformer_cli.attention import lsh_core
from reformer_cli.attention.lsh import hash_buckets, lsh_attention, lsh_attention_from_buckets
from reformer_cli.attention.lsh_core import LSHAttentionCore, lsh_implementation
from reformer_cli.errors import UserError
from reformer_cli.model.reformer import build_model
from reformer_cli.primitives.context import ForwardContext

from ..conftest import compose


def lsh_cfg(*overrides):
    return compose(["attention=lsh", "attention.chunk_length=4", *overrides]).attention


def inputs(length=16, heads=2, d=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, heads, length, d, generator=gen, dtype=torch.float64),
            torch.randn(2, heads, length, d, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("overrides", [["attention.n_rounds=3"], ["attention.n_buckets=[2,4]", "attention.dedup=false",
                                                                   "attention.wrap_lookback=true",
                                                                   "attention.attend_across_buckets=true"],
                                       ["attention.rotations=per_example"],
                                       ["attention.rotations=per_example", "attention.n_buckets=[2,4]"]])
def test_core_computes_the_function_form_with_the_runs_rotations(overrides):
    cfg = lsh_cfg(*overrides)
    core = LSHAttentionCore(cfg)
    q, v = inputs()
    ctx = ForwardContext(seed=5, training=True)
    out = core(q, None, v, ctx, layer=1)
    gen = ctx.generator(q.device, 1, "lsh_rotations")
    factors = [int(f) for f in cfg.n_buckets] if cfg.n_buckets is not None else [8]  # 2 * 16 // 4
    per_example = (2,) if cfg.rotations == "per_example" else ()  # the batch's 2 examples
    rotations = [torch.randn(*per_example, 2, 8, cfg.n_rounds, f // 2, generator=gen) for f in factors]
    want = lsh_attention(q, v, rotations, chunk_length=4, n_chunks_before=1, causal=True,
                         wrap_lookback=cfg.wrap_lookback, dedup=cfg.dedup,
                         attend_across_buckets=cfg.attend_across_buckets)
    assert torch.equal(out, want)


def test_rotations_are_fresh_per_seed_and_repeatable():
    core = LSHAttentionCore(lsh_cfg("attention.n_rounds=2"))
    q, _ = inputs(length=64)
    factors = core.factors(64)
    a = core.buckets(q, ForwardContext(seed=1), 0, factors)
    b = core.buckets(q, ForwardContext(seed=1), 0, factors)
    c = core.buckets(q, ForwardContext(seed=2), 0, factors)
    d = core.buckets(q, ForwardContext(seed=1), 1, factors)  # another layer: other rotations
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)


def test_per_example_rotations_are_fresh_per_seed_and_repeatable():
    """Per example: one draw per example, each example hashed with its own; the same seed gives the
    same buckets (evaluation is repeatable), another seed other ones; a config saved before the
    key existed draws them shared."""
    core = LSHAttentionCore(lsh_cfg("attention.rotations=per_example"))
    q, _ = inputs(length=64)
    factors = core.factors(64)
    rotations = core.rotations(ForwardContext(seed=1), 0, 2, 8, factors, q.device, batch=2)
    assert [r.shape for r in rotations] == [(2, 2, 8, 2, 16)]
    assert not torch.equal(rotations[0][0], rotations[0][1])
    a = core.buckets(q, ForwardContext(seed=1), 0, factors)
    assert torch.equal(a, hash_buckets(q, rotations))
    assert torch.equal(a, core.buckets(q, ForwardContext(seed=1), 0, factors))
    assert not torch.equal(a, core.buckets(q, ForwardContext(seed=2), 0, factors))
    with pytest.raises(ValueError, match="batch"):
        core.rotations(ForwardContext(seed=1), 0, 2, 8, factors, q.device)
    before = types.SimpleNamespace(**{k: v for k, v in lsh_cfg().items() if k != "rotations"})
    assert not LSHAttentionCore(before).per_example


def test_default_bucket_count_follows_the_actual_length():
    core = LSHAttentionCore(lsh_cfg())
    assert core.factors(16) == [8] and core.factors(3) == [2] and core.factors(512) == [256]
    assert core.factors(1024) == [16, 32]  # 512 buckets: above SINGLE_FACTOR_MAX_BUCKETS, two factors
    rotations = core.rotations(ForwardContext(), 0, 2, 8, core.factors(16), torch.device("cpu"))
    assert [r.shape for r in rotations] == [(2, 8, 2, 4)] and rotations[0].dtype == torch.float32
    fixed = LSHAttentionCore(lsh_cfg("attention.n_buckets=[4,6]"))
    assert fixed.factors(16) == [4, 6]


def test_buckets_are_replayed_from_the_cache():
    core = LSHAttentionCore(lsh_cfg("attention.n_rounds=2"))
    q, v = inputs()
    cache: dict = {}
    first = core(q, None, v, ForwardContext(seed=1, training=True, cache=cache), 0)
    buckets = cache[(0, "lsh_buckets")]
    assert torch.equal(buckets, core.buckets(q, ForwardContext(seed=1), 0, core.factors(16)))
    # a recomputation with a slightly different input (and even another seed) reuses the buckets
    q2 = q + 1e-3 * torch.randn_like(q)
    again = core(q2, None, v, ForwardContext(seed=7, training=True, cache=cache), 0)
    assert torch.equal(again, lsh_attention_from_buckets(q2, v, buckets, chunk_length=4, n_buckets=8))
    assert not torch.equal(hash_buckets(q2, core.rotations(ForwardContext(seed=7), 0, 2, 8, core.factors(16), q.device)), buckets)
    assert (again - first).abs().max() < 1e-2


def test_attention_dropout_is_replayable_and_off_at_evaluation():
    core = LSHAttentionCore(lsh_cfg("attention.dropout=0.5"))
    plain = LSHAttentionCore(lsh_cfg())
    q, v = inputs()
    a = core(q, None, v, ForwardContext(seed=3, training=True), 0)
    assert torch.equal(a, core(q, None, v, ForwardContext(seed=3, training=True), 0))
    assert not torch.equal(a, plain(q, None, v, ForwardContext(seed=3, training=True), 0))
    assert torch.equal(core(q, None, v, ForwardContext(seed=3), 0), plain(q, None, v, ForwardContext(seed=3), 0))


def test_implementation_choice(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    reference = lsh_attention_from_buckets
    monkeypatch.setattr(lsh_core, "_fast_module", lambda: (None, "ModuleNotFoundError: no fast"))
    assert lsh_implementation("reference", cuda) is reference
    assert lsh_implementation("auto", cuda) is reference and lsh_implementation("auto", cpu) is reference
    with pytest.raises(UserError, match="CUDA"):
        lsh_implementation("fast", cpu)
    with pytest.raises(UserError, match="reformer_cli.attention.fast"):
        lsh_implementation("fast", cuda)
    fast = types.SimpleNamespace(lsh_attention_from_buckets=lambda *a, **k: None)
    monkeypatch.setattr(lsh_core, "_fast_module", lambda: (fast, None))
    assert lsh_implementation("auto", cuda) is fast.lsh_attention_from_buckets
    assert lsh_implementation("fast", cuda) is fast.lsh_attention_from_buckets
    assert lsh_implementation("auto", cpu) is reference and lsh_implementation("reference", cuda) is reference


def lsh_model(*overrides, seq_len=16):
    cfg = compose(["model=tiny", f"task.seq_len={seq_len}", "attention=lsh", "attention.chunk_length=4", *overrides])
    torch.manual_seed(0)
    return build_model(cfg, 32, cfg.task.seq_len).double(), cfg


@pytest.mark.parametrize("overrides", [[], ["attention.n_rounds=3", "attention.wrap_lookback=true", "attention.dedup=false",
                                            "attention.n_chunks_before=2", "attention.attend_across_buckets=true"]])
def test_lsh_model_has_no_causal_leak(overrides):
    """Must-show 3 through the whole model: d logits_i / d embedding_j == 0 for j > i."""
    model, _ = lsh_model(*overrides)
    model.train()
    captured = {}

    def leaf(module, args, output):
        captured["x"] = output.detach().requires_grad_()
        return captured["x"]

    model.embed.register_forward_hook(leaf)
    logits = model(torch.randint(0, 32, (2, 16)), seed=4)
    for i in range(16):
        (grad,) = torch.autograd.grad(logits[:, i].sum(), captured["x"], retain_graph=True)
        assert torch.all(grad[:, i + 1:] == 0), i
        assert grad[:, : i + 1].abs().sum() > 0


def test_one_chunk_lsh_model_equals_the_same_weights_under_full_shared_qk_attention():
    model, _ = lsh_model("attention.chunk_length=16", "attention.n_rounds=2", "attention.attend_across_buckets=true")
    model.eval()
    tokens = torch.randint(0, 32, (2, 16))
    lsh = model(tokens, seed=1)
    model.set_attention(compose(["attention=full", "attention.shared_qk=true"]).attention)
    assert (model(tokens, seed=1) - lsh).abs().max() < 1e-10


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["attention.n_buckets=3"], "even integer"),
        (["attention.n_buckets=[4,5]"], "even integer"),
        (["attention.chunk_length=0"], "attention.chunk_length"),
        (["attention.n_chunks_before=-1"], "attention.n_chunks_before"),
        (["attention.impl=triton"], "attention.impl"),
    ],
)
def test_config_errors(overrides, message):
    from reformer_cli.config import validate
    from reformer_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        validate(compose(["attention=lsh", *overrides]))
