"""One source for every attention default: `LSHSettings` (and SELF_MASK_VALUE) in
primitives/attention_settings.py. The config schemas, the composed `attention=` options, the
function forms (reference and fast), the model's core and the documented key table must all agree
with it; a default written a second time somewhere and changed there fails here."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from reformer_cli.attention import full, lsh
from reformer_cli.attention.lsh_core import LSHAttentionCore
from reformer_cli.config import FullAttentionConfig, LSHAttentionConfig
from reformer_cli.hydra_entry import CONF_DIR
from reformer_cli.primitives.attention_settings import (SELF_MASK_VALUE, SINGLE_FACTOR_MAX_BUCKETS, LSHSettings,
                                                       bucket_factors, even_split)
from reformer_cli.primitives.context import ForwardContext

from ..conftest import REPO, compose

FIELDS = [f.name for f in dataclasses.fields(LSHSettings)]


def test_the_schema_takes_the_lsh_defaults_from_the_settings():
    schema = LSHAttentionConfig()
    assert {name: getattr(schema, name) for name in FIELDS} == dataclasses.asdict(LSHSettings())
    assert FullAttentionConfig().self_mask_value == SELF_MASK_VALUE


def test_the_option_files_repeat_no_value():
    for path in sorted((CONF_DIR / "attention").glob("*.yaml")):
        assert set(yaml.safe_load(path.read_text())) == {"defaults"}, path
    for option, schema in (("lsh", LSHAttentionConfig()), ("full", FullAttentionConfig())):
        composed = OmegaConf.to_container(compose([f"attention={option}"]).attention)
        assert composed == dataclasses.asdict(schema), option


def test_the_lsh_functions_take_their_keywords_only_from_the_settings():
    """The reference and the kernels' entry points write no default of their own."""
    pytest.importorskip("triton")
    from reformer_cli.attention import fast

    for function in (lsh.lsh_attention, lsh.lsh_attention_from_buckets, fast.lsh_attention,
                     fast.lsh_attention_from_buckets, fast.unsupported_reason):
        parameters = inspect.signature(function).parameters
        assert not set(FIELDS) & set(parameters), function.__name__  # no default written twice
        assert parameters["settings"].default is None  # None: LSHSettings()
    with pytest.raises(TypeError, match="chunk_lenght"):
        LSHSettings().replace(chunk_lenght=8)


def test_full_attention_functions_default_to_the_schema():
    schema = FullAttentionConfig()
    parameters = inspect.signature(full.shared_qk_full_attention).parameters
    assert parameters["causal"].default == schema.causal == inspect.signature(full.full_attention).parameters["causal"].default
    assert parameters["self_mask"].default == schema.self_mask
    assert parameters["keys"].default == schema.shared_qk_keys
    assert parameters["self_mask_value"].default == schema.self_mask_value
    assert parameters["self_mask_mode"].default == schema.self_mask_mode


def test_the_core_reads_its_settings_from_the_config():
    cfg = compose(["attention=lsh", "attention.chunk_length=8", "attention.dedup=false"]).attention
    assert LSHAttentionCore(cfg).settings == LSHSettings(chunk_length=8, dedup=False)


def test_the_documented_table_shows_the_defaults():
    """docs/lsh-attention.md's "Options and defaults" table shows what the schema gives."""
    composed = OmegaConf.to_container(compose(["attention=lsh"]).attention)
    text = (REPO / "docs" / "lsh-attention.md").read_text().split("\n## Options and defaults\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+?) \|", text, flags=re.M))
    assert set(rows) == set(composed) - {"name"}
    for key, shown in rows.items():
        assert shown == yaml.safe_dump(composed[key]).strip().removesuffix("...").strip(), key


def test_bucket_factors():
    assert bucket_factors(None, 1024, 64) == [32] and bucket_factors(None, 3, 4) == [2]
    assert bucket_factors(8, 1024, 64) == [8] and bucket_factors([4, 6], 1024, 64) == [4, 6]


@pytest.mark.parametrize("count", [4, 8, 12, 192, 256, 512, 1000, 1024, 2048, 4096, 1026, 1030, 2 * 257])
def test_even_split_is_the_most_even_pair_of_even_factors_of_the_count_rounded_up_to_4(count):
    f1, f2 = even_split(count)
    total = f1 * f2
    assert f1 % 2 == 0 and f2 % 2 == 0 and 2 <= f1 <= f2
    assert total == count if count % 4 == 0 else total == count + 2  # the next multiple of 4
    # no pair of even factors of the total is more even (brute force over every even f1)
    assert not [a for a in range(f1 + 2, total + 1, 2) if total % a == 0 and (total // a) % 2 == 0 and a <= total // a]


def test_the_default_count_is_one_factor_up_to_the_limit_and_two_above():
    limit = SINGLE_FACTOR_MAX_BUCKETS
    assert limit % 4 == 0
    chunk = 64
    below, at, above = (limit - 4) * chunk // 2, limit * chunk // 2, (limit + 4) * chunk // 2  # 2 L / chunk
    assert bucket_factors(None, below, chunk) == [limit - 4]
    assert bucket_factors(None, at, chunk) == [limit]
    assert bucket_factors(None, at + chunk - 1, chunk) == [limit]  # L // chunk rounds down
    f1, f2 = bucket_factors(None, above, chunk)
    assert f1 * f2 == limit + 4 and f1 % 2 == 0 and f2 % 2 == 0 and [f1, f2] == even_split(limit + 4)
    f1, f2 = bucket_factors(None, 65536, 128)  # the paper's enwik8 length in chunks of 128: 1024 buckets
    assert (f1, f2) == (32, 32)
    # an explicit int is one factor at any length: the paper's hashing stays one setting away
    assert bucket_factors(1024, 65536, 128) == [1024] and bucket_factors(2 * limit, 8, 4) == [2 * limit]
    # the committed cpu profiles hash as before: Table 2 (256 / 8), fig3/fig4 (512 / 32), memory_claims lsh-8k
    assert bucket_factors(None, 256, 8) == [64] and bucket_factors(None, 512, 32) == [32]
    assert bucket_factors(None, 8192, 64) == [256]


@pytest.mark.parametrize("above", [False, True])
def test_the_model_s_lsh_core_hashes_a_long_sequence_with_two_factors(above):
    """The core at a length whose default count is just above the limit draws two rotation tensors
    (`even_split`) and computes the function form with them; at the limit, one."""
    chunk = 2
    length = SINGLE_FACTOR_MAX_BUCKETS + (8 if above else 0)  # 2 * length / 2 buckets
    factors = even_split(length) if above else [length]
    assert len(factors) == (2 if above else 1)
    cfg = compose(["attention=lsh", f"attention.chunk_length={chunk}", "attention.n_rounds=1"]).attention
    core = LSHAttentionCore(cfg)
    assert core.factors(length) == factors
    gen = torch.Generator().manual_seed(0)
    q, v = (torch.randn(1, 1, length, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    ctx = ForwardContext(seed=3, training=True)
    out = core(q, None, v, ctx, layer=0)
    rotations_gen = ctx.generator(q.device, 0, "lsh_rotations")
    rotations = [torch.randn(1, 4, 1, f // 2, generator=rotations_gen) for f in factors]
    assert torch.equal(out, lsh.lsh_attention(q, v, rotations, chunk_length=chunk, causal=True))
