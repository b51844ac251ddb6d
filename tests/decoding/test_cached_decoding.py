"""Cached decoding equals the model's forward over the prefix (fp64, 1e-5), in every attention,
layer and position setting: the forward with the same rotations, the sequence in one chunk and
the same masks. The decoder feeds the prompt in blocks and then one token at a time, so both the
block path and the single-query path are compared at every position."""

from __future__ import annotations

import pytest
import torch

from reformer_cli.decoding.incremental import CachedDecoder
from reformer_cli.model.reformer import build_model
from reformer_cli.primitives.context import ForwardContext

from ..conftest import compose

LENGTH = 24
SEED = 11

CASES = {
    "full": ["attention=full"],
    "full-shared-qk": ["attention=full", "attention.shared_qk=true"],
    "full-shared-qk-raw-add": ["attention=full", "attention.shared_qk=true", "attention.shared_qk_keys=raw",
                               "attention.self_mask_mode=add", "attention.self_mask_value=-2.0"],
    "lsh-1": ["attention=lsh", "attention.n_rounds=1"],
    "lsh-2": ["attention=lsh", "attention.n_rounds=2"],
    "lsh-4": ["attention=lsh", "attention.n_rounds=4"],
    "lsh-2-factorised": ["attention=lsh", "attention.n_rounds=2", "attention.n_buckets=[2,2]"],
    "lsh-2-no-dedup": ["attention=lsh", "attention.n_rounds=2", "attention.dedup=false"],
    "lsh-2-across-buckets": ["attention=lsh", "attention.n_rounds=2", "attention.attend_across_buckets=true"],
    "lsh-2-wrap": ["attention=lsh", "attention.n_rounds=2", "attention.wrap_lookback=true"],
    "lsh-2-per-example": ["attention=lsh", "attention.n_rounds=2", "attention.rotations=per_example"],
    # local attention decodes with its trained chunks (chunking by position: no one-chunk stand-in)
    "local": ["attention=local", "attention.chunk_length=4"],
    "local-b2": ["attention=local", "attention.chunk_length=5", "attention.n_chunks_before=2"],
    "local+full": ["attention=local", "attention.chunk_length=4", "model.attn_layers=[local,full]"],
    "local+lsh-2": ["attention=lsh", "attention.n_rounds=2", "model.attn_layers=[local,lsh]",
                    "+model.attn_settings.local.chunk_length=4"],
}
LSH_WHOLE = ["attention.chunk_length=32", "attention.n_buckets=4"]  # one chunk; few buckets: many collisions


def model_of(case: str, layer: str, positions: str):
    extra = LSH_WHOLE if "attention=lsh" in CASES[case] else []
    overrides = ["model=tiny", "task.seq_len=32", f"layer={layer}", f"model.positions={positions}",
                 "model.position_init_std=1.0", *extra, *CASES[case]]
    if "n_buckets=[2,2]" in " ".join(CASES[case]):
        overrides.remove("attention.n_buckets=4")
    cfg = compose(overrides)
    torch.manual_seed(0)
    model = build_model(cfg, 19, int(cfg.task.seq_len)).double().eval()
    if positions == "axial":
        for table in model.positions.tables:  # trained-looking, not N(0, 1) noise that swamps the tokens
            table.data.mul_(0.5)
    return model


def decoded_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    decoder = CachedDecoder(model, batch=tokens.shape[0], ctx=ForwardContext(seed=SEED), block=5)
    prompt = 13
    pieces = [decoder.feed(tokens[:, :prompt])]
    pieces += [decoder.feed(tokens[:, i : i + 1]) for i in range(prompt, tokens.shape[1])]
    return torch.cat(pieces, dim=1)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("layer", ["standard", "reversible"])
def test_cached_decoding_equals_the_forward_over_each_prefix(case, layer):
    model = model_of(case, layer, "learned")
    tokens = torch.randint(0, 19, (2, LENGTH), generator=torch.Generator().manual_seed(3))
    cached = decoded_logits(model, tokens)
    with torch.no_grad():
        whole = model(tokens, seed=SEED)
        assert torch.allclose(cached, whole, atol=1e-5, rtol=0), (cached - whole).abs().max()
        for end in (1, 2, 9, 17):  # the forward over a shorter prefix gives the same last distribution
            prefix = model(tokens[:, :end], seed=SEED)
            assert torch.allclose(cached[:, end - 1], prefix[:, -1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("positions", ["axial", "none"])
@pytest.mark.parametrize("case", ["full", "lsh-2"])
def test_cached_decoding_with_other_positions(case, positions):
    model = model_of(case, "reversible", positions)
    tokens = torch.randint(0, 19, (1, LENGTH), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(decoded_logits(model, tokens), model(tokens, seed=SEED), atol=1e-5, rtol=0)


def test_the_lsh_cache_differs_from_full_attention():
    """The comparison above can fail: LSH with few buckets is not full attention (shared QK)."""
    lsh, full = model_of("lsh-2", "standard", "learned"), model_of("full-shared-qk", "standard", "learned")
    tokens = torch.randint(0, 19, (1, LENGTH), generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(decoded_logits(lsh, tokens), decoded_logits(full, tokens), atol=1e-3)


def test_the_local_cache_differs_from_full_attention():
    """The local cases can fail: chunks of 4 over 24 positions are not full attention (same weights)."""
    local, full = model_of("local", "standard", "learned"), model_of("full", "standard", "learned")
    tokens = torch.randint(0, 19, (1, LENGTH), generator=torch.Generator().manual_seed(3))
    local_logits, full_logits = decoded_logits(local, tokens), decoded_logits(full, tokens)
    assert torch.allclose(local_logits[:, :8], full_logits[:, :8], atol=1e-5)  # the first two chunks see all
    assert not torch.allclose(local_logits, full_logits, atol=1e-3)
