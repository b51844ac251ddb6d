"""One source for every attention default: `LSHSettings` (and SELF_MASK_VALUE) in
primitives/attention_settings.py. The config schemas, the composed `attention=` options, the
function forms (reference and fast), the model's core and the documented key table must all agree
with it; a default written a second time somewhere and changed there fails here."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
import yaml
from omegaconf import OmegaConf

from reformer_cli.attention import full, lsh
from reformer_cli.attention.lsh_core import LSHAttentionCore
from reformer_cli.config import FullAttentionConfig, LSHAttentionConfig
from reformer_cli.hydra_entry import CONF_DIR
from reformer_cli.primitives.attention_settings import SELF_MASK_VALUE, LSHSettings, bucket_factors

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
