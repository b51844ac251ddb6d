"""An attention type is one spec (reformer_cli/attention/spec.py): a new one needs its own module
and its option file, nothing else. A throwaway type written by the test trains, evaluates and is
named by its own label in the records and the tables; an unknown type is one line."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap

import pytest

from reformer_cli.attention import registry
from reformer_cli.errors import ConfigError
from reformer_cli.naming import attention_label

from ..conftest import TINY, in_process

MODULE = '''
"""A throwaway attention: uniform weights over the keys up to the query (a causal mean)."""
from dataclasses import dataclass

import torch

from reformer_cli.attention.spec import AttentionSpec, positive
from reformer_cli.primitives.attention_core import AttentionCore


@dataclass
class MeanAttentionConfig:
    name: str = "mean"
    causal: bool = True
    dropout: float = 0.0
    width: int = 3


class MeanCore(AttentionCore):
    shared_qk = False

    def __init__(self, attention):
        self.width = int(attention.width)

    def __call__(self, q, k, v, ctx, layer, key_padding_mask=None):
        counts = torch.arange(1, v.shape[-2] + 1, dtype=v.dtype, device=v.device)[:, None]
        return v.cumsum(dim=-2) / counts


SPEC = AttentionSpec(
    name="mean", schema=MeanAttentionConfig, build_core=MeanCore,
    validate=lambda attention, seq_len: positive("attention.width", attention.width),
    label=lambda attention: f"mean-w{attention['width']}",
)
'''

OPTION = """
defaults:
  - /schema/attention@_here_: mean
  - _self_
"""


@pytest.fixture
def mean_attention(tmp_path, monkeypatch):
    """The module and the option file, written to tmp_path; the spec registered through the registry."""
    (tmp_path / "mean_attention.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "conf" / "attention").mkdir(parents=True)
    (tmp_path / "conf" / "attention" / "mean.yaml").write_text(OPTION)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__("mean_attention")
    registry.register(module.SPEC)
    yield tmp_path
    registry.unregister("mean")
    sys.modules.pop("mean_attention", None)


def test_a_new_attention_type_from_one_module_and_one_option_file(mean_attention, monkeypatch, capsys):
    monkeypatch.chdir(mean_attention)
    settings = [o for o in TINY if not o.startswith("attention=")]
    code, err = in_process(["run", "-cd", "conf", *settings, "attention=mean", "attention.width=5",
                            "trainer.max_steps=2", "trainer.eval_every=2", "trainer.ckpt_every=2"], capsys)
    assert code == 0, err
    (run,) = (mean_attention / "outputs" / "synthetic").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert "mean-w5" in summary["run_name"]
    code, err = in_process(["eval", f"checkpoint={run}", "output=eval.json", "progress=none", "max_batches=1"], capsys)
    assert code == 0, err
    record = json.loads((mean_attention / "eval.json").read_text())
    assert record["trained_label"] == record["evaluated_label"] == "mean-w5"
    # a bad value is the spec's one line
    code, err = in_process(["run", "-cd", "conf", *settings, "attention=mean", "attention.width=0"], capsys)
    assert code == 2 and "attention.width=0 must be a positive integer" in err


def test_the_runs_table_shows_the_new_label(mean_attention, monkeypatch, capsys):
    monkeypatch.chdir(mean_attention)
    settings = [o for o in TINY if not o.startswith("attention=")]
    code, err = in_process(["run", "-cd", "conf", *settings, "attention=mean", "trainer.max_steps=2"], capsys)
    assert code == 0, err
    capsys.readouterr()
    from reformer_cli.cli import main

    assert main(["runs", "outputs"]) in (0, None)
    assert "mean-w3" in capsys.readouterr().out


def test_the_baseline_and_the_hashing_types_are_what_the_specs_say(mean_attention):
    """A new type is neither the benchmarks' baseline nor hashing unless its spec says so; a record's
    name no spec has does not hash; two baselines are one line."""
    assert registry.baseline().name == "full"
    assert [registry.hashes(name) for name in ("lsh", "full", "local", "mean", "gone")] == [True] + [False] * 4
    assert registry.hashes({"name": "lsh", "n_rounds": 2}) and not registry.hashes({})
    registry.register(dataclasses.replace(registry.spec_of("mean"), baseline=True, hashes=True))
    assert registry.hashes("mean")
    with pytest.raises(ConfigError, match=r"^2 attention types are flagged as the baseline \(full, mean\)"):
        registry.baseline()


def test_the_memory_estimate_counts_what_a_type_s_spec_says_it_holds(mean_attention):
    """A type whose spec states no memory adds no term to the estimate; one whose spec states held
    weights, a transient table and gathered vectors is counted as the built-in types are: held terms
    summed over the standard layers, a transient one at its largest layer and in the phase before
    the attention (not next to the logits), vectors summed over the layers as well."""
    from omegaconf import OmegaConf

    from reformer_cli.attention.spec import VECTOR_COPIES, WEIGHT_COPIES, MemoryTerm, gathered_vectors, weights
    from reformer_cli.hydra_entry import compose
    from reformer_cli.memory_estimate import estimate, memory_terms

    cfg = compose("config", ["model=tiny", "model.n_layers=2", "task=synthetic", "task.seq_len=64",
                             "trainer.device=cpu", "logger=none"])
    cfg.attention = OmegaConf.create({"name": "mean", "causal": True, "dropout": 0.0, "width": 3})
    plain = memory_terms(cfg)
    process, parameters, logits, activations = (size for size, what in plain)
    assert len(plain) == 4 and estimate(plain) == process + parameters + activations + logits

    registry.register(dataclasses.replace(
        registry.spec_of("mean"),
        memory_per_query=lambda attention, seq_len: [weights(attention.width, "mean's weights"),
                                                     MemoryTerm(seq_len, "mean's table", transient=True)],
        memory_vectors=lambda attention, d_head: gathered_vectors(attention.width, d_head)))
    terms = memory_terms(cfg)
    model = cfg.model
    per_query = cfg.trainer.batch_size * model.n_heads * 64 * 4  # float32 bytes per query and head
    d_head = model.get("d_head") or model.d_model // model.n_heads
    # two layers' weights and vectors (width 3), one layer's table (64 floats, the sequence's length)
    held_weights, table = 2 * 3 * WEIGHT_COPIES * per_query, 64 * per_query
    vectors = 2 * 3 * d_head * VECTOR_COPIES * per_query
    assert terms[:4] == plain
    assert [size for size, what in terms[4:]] == [held_weights, table, vectors]
    assert [what for size, what in terms[4:6]] == ["mean's weights", "mean's table"]
    assert terms[6][1].startswith("the attention's sorted and gathered vectors")
    assert estimate(terms) == process + parameters + activations + max(table, logits + held_weights + vectors)


def test_an_unknown_attention_is_one_line_never_full():
    with pytest.raises(ConfigError, match=r"unknown attention 'local2' \(available: full, local, lsh\)"):
        attention_label({"name": "local2"})
    assert attention_label({"name": "local", "chunk_length": 64}) == "local-64"


def test_a_mixed_model_is_labelled_by_all_its_layers_before_and_after_a_swap():
    """model.attn_layers: the label joins the layers' labels; an evaluation's attention replaces only
    the layers that ran `attention` (docs/model.md's example)."""
    from omegaconf import OmegaConf

    from reformer_cli.naming import model_attention_label

    from ..conftest import compose

    cfg = compose(["model.n_layers=4", "model.attn_layers=[local,lsh]", "attention=lsh", "attention.n_rounds=4",
                   "+model.attn_settings.local.chunk_length=128"])
    assert model_attention_label(cfg) == "local-128+lsh-4"
    assert model_attention_label(cfg, OmegaConf.merge(cfg.attention, {"n_rounds": 8})) == "local-128+lsh-8"
    assert model_attention_label(cfg, {"name": "full", "shared_qk": True}) == "local-128+full-sharedqk"
    plain = compose(["attention=lsh", "attention.n_rounds=4"])
    assert model_attention_label(plain, {"name": "lsh", "n_rounds": 8}) == "lsh-8"
