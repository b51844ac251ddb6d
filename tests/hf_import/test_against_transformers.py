"""`reformer import hf`: small random transformers Reformers, saved with save_pretrained, imported
through the command line, give the same logits here as in transformers (fp32, eval mode), with
the same LSH rotations in both (transformers draws them with torch.randn after
torch.manual_seed(hash_seed); this project's draw is replaced by the same draw in the test).
The imported folder is a run: `reformer eval` reads it and `reformer run ... resume=<folder>`
continues it.

Models with one hash round are compared in fp32. With several rounds transformers merges them as
exp(z_r - logsumexp_r z) in the working precision, and a query whose only key is itself (position 0
under the causal mask) has z_r = -1e5 in every round, where fp32 resolves 0.0078: its weights sum
to 0.998 (two rounds) instead of 1, and the difference spreads through the layers. This project
merges with a max-subtracted softmax (weights summing to 1), so several rounds are compared in
fp64, where both compute the same function to far below 1e-5 (docs/hf-import.md)."""

from __future__ import annotations

import json

import pytest
import torch

from reformer_cli.attention.lsh_core import LSHAttentionCore

from ..conftest import in_process, run_cli

transformers = pytest.importorskip("transformers")

HASH_SEED = 7
DTYPE = {"now": torch.float32}  # the precision of the comparison under way (transformers draws its rotations in it)


def hf_model(**settings):
    """A tiny random ReformerModelWithLMHead in eval mode (LSH layers unless attn_layers says otherwise)."""
    config = transformers.ReformerConfig(
        **{"attn_layers": ["lsh", "lsh"], "hidden_size": 16, "feed_forward_size": 24, "num_attention_heads": 2,
           "attention_head_size": 8, "axial_pos_shape": [4, 8], "axial_pos_embds_dim": [6, 10], "vocab_size": 11,
           "is_decoder": True, "hash_seed": HASH_SEED, "hidden_dropout_prob": 0.0,
           "lsh_attention_probs_dropout_prob": 0.0, "max_position_embeddings": 32, **settings})
    torch.manual_seed(0)
    model = transformers.ReformerModelWithLMHead(config)
    with torch.no_grad():  # weights large enough that attention is peaked and masks matter
        for p in model.parameters():
            p.normal_(0.0, 0.7)
    return model.eval()


def use_hf_rotations(monkeypatch):
    """Make this project's LSH layers hash with transformers' rotations: torch.randn(heads, d_head,
    rounds, sum(factors) / 2) after manual_seed(hash_seed), in the working precision, split into
    its columns per factor (the same draw for every LSH layer, as HF reseeds in each).

    Depends on LSHAttentionCore.rotations(self, ctx, layer, n_heads, d_head, <length or factors>,
    device, batch=...) returning one [heads, d_head, rounds, f/2] tensor per bucket factor f, and on
    LSHAttentionCore.factors(length) when it is given the length."""

    def rotations(self, ctx, layer, n_heads, d_head, length_or_factors, device, batch=None):
        factors = self.factors(length_or_factors) if isinstance(length_or_factors, int) else length_or_factors
        drawn = torch.randn((n_heads, d_head, self.n_rounds, sum(factors) // 2), dtype=DTYPE["now"],
                            generator=torch.Generator().manual_seed(HASH_SEED))
        return list(drawn.split([f // 2 for f in factors], dim=-1))

    monkeypatch.setattr(LSHAttentionCore, "rotations", rotations)


def imported_logits(folder, tokens, dtype=torch.float32):
    from omegaconf import OmegaConf

    from reformer_cli.model.reformer import build_model
    from reformer_cli.records import load_checkpoint

    [path] = (folder / "checkpoints").glob("step-*.pt")
    saved = load_checkpoint(path)
    cfg = OmegaConf.create(saved["config"])
    model = build_model(cfg, saved["model"]["embed.weight"].shape[0], int(cfg.task.seq_len))
    model.load_state_dict(saved["model"])
    with torch.no_grad():
        return model.to(dtype).eval()(tokens), cfg


CASES = {
    "one round, chunks of 8": dict(num_hashes=1, lsh_attn_chunk_length=8, num_buckets=4),
    "two rounds, factorised buckets": dict(num_hashes=2, lsh_attn_chunk_length=4, num_buckets=[2, 4]),
    "four rounds, gelu, chunked feed-forward": dict(num_hashes=4, lsh_attn_chunk_length=8, num_buckets=4,
                                                    hidden_act="gelu", chunk_size_feed_forward=8,
                                                    layer_norm_eps=1e-3),
    "two back chunks, buckets left to HF": dict(num_hashes=2, lsh_attn_chunk_length=4, num_buckets=None,
                                                lsh_num_chunks_before=2),
    "learned positions": dict(num_hashes=2, lsh_attn_chunk_length=8, num_buckets=4, axial_pos_embds=False,
                              max_position_embeddings=40),
    "local, chunks of 4": dict(attn_layers=["local", "local"], local_attn_chunk_length=4),
    "local, chunks of 8, two back, learned positions": dict(
        attn_layers=["local", "local", "local"], local_attn_chunk_length=8, local_num_chunks_before=2,
        axial_pos_embds=False, max_position_embeddings=40),
    "local, two chunks of 16": dict(attn_layers=["local"], local_attn_chunk_length=16),
    "local, one chunk of 32 (HF: unchunked)": dict(attn_layers=["local", "local"], local_attn_chunk_length=32),
    "local, no look-back, gelu": dict(attn_layers=["local", "local"], local_attn_chunk_length=4,
                                      local_num_chunks_before=0, hidden_act="gelu"),
    "local and lsh": dict(attn_layers=["local", "lsh"], local_attn_chunk_length=4, num_hashes=1,
                          lsh_attn_chunk_length=8, num_buckets=4),
    "lsh, local, local, lsh, two rounds": dict(attn_layers=["lsh", "local", "local", "lsh"], num_hashes=2,
                                               local_attn_chunk_length=8, lsh_attn_chunk_length=8,
                                               num_buckets=[2, 2], local_num_chunks_before=2),
}


def imported_from(model, tmp_path, capsys, *extra):
    model.save_pretrained(tmp_path / "hf")
    code, err = in_process(["import", "hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run"), *extra], capsys)
    assert code == 0, err
    return tmp_path / "run"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("length", [32, 27])
def test_logits_equal_transformers(case, length, tmp_path, capsys, monkeypatch):
    model = hf_model(**CASES[case])
    if "num_buckets" in CASES[case] and CASES[case]["num_buckets"] is None:  # HF sets it on its first forward
        model(torch.zeros(1, 32, dtype=torch.long))  # (at the full length 32)
    folder = imported_from(model, tmp_path, capsys)
    tokens = torch.randint(0, 11, (2, length), generator=torch.Generator().manual_seed(1))
    dtype = torch.float32 if CASES[case].get("num_hashes", 1) == 1 else torch.float64
    monkeypatch.setitem(DTYPE, "now", dtype)
    with torch.no_grad():
        expected = model.to(dtype)(tokens).logits
    use_hf_rotations(monkeypatch)
    got, cfg = imported_logits(folder, tokens, dtype)
    kinds = set(CASES[case].get("attn_layers", ["lsh"]))
    assert cfg.attention.name == ("lsh" if "lsh" in kinds else "local")
    assert (cfg.model.attn_layers is not None) == (len(kinds) == 2)
    assert expected.abs().max() > 1  # logits that tell models apart
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_local_layers_are_imported_as_local_attention(tmp_path, capsys):
    """The local layers' settings and their separate query and key weights arrive where they belong."""
    model = hf_model(**CASES["local and lsh"], local_num_chunks_before=3, local_attention_probs_dropout_prob=0.25)
    folder = imported_from(model, tmp_path, capsys)
    from reformer_cli.records import load_checkpoint

    [path] = (folder / "checkpoints").glob("step-*.pt")
    saved = load_checkpoint(path)
    local = saved["config"]["model"]["attn_settings"]["local"]
    assert saved["config"]["model"]["attn_layers"] == ["local", "lsh"]
    assert [local[k] for k in ("chunk_length", "n_chunks_before", "n_chunks_after", "dropout")] == [4, 3, 0, 0.25]
    theirs = model.state_dict()
    for ours, name in (("to_q", "query"), ("to_k", "key"), ("to_v", "value")):
        assert torch.equal(saved["model"][f"stack.blocks.0.attention.attention.{ours}.weight"],
                           theirs[f"reformer.encoder.layers.0.attention.self_attention.{name}.weight"])
    assert "stack.blocks.1.attention.attention.to_qk.weight" in saved["model"]


def test_padding_to_the_chunk_lengths_multiple_is_noted(tmp_path, capsys, monkeypatch):
    """With local chunks of 8 and LSH chunks of 4, transformers pads every input to a multiple of 8,
    the LSH layers here to a multiple of 4 (at a length that is not a multiple of 8 the look-back
    from a round's first chunk can reach other keys): the import says so; at 32 the logits agree."""
    model = hf_model(attn_layers=["local", "lsh"], local_attn_chunk_length=8, lsh_attn_chunk_length=4,
                     num_hashes=1, num_buckets=4)
    folder = imported_from(model, tmp_path, capsys)
    notes = json.loads((folder / "import.json").read_text())["notes"]
    assert any("pads an input to a multiple of 8" in line for line in notes), notes
    use_hf_rotations(monkeypatch)
    tokens = torch.randint(0, 11, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(tokens).logits
    got, _ = imported_logits(folder, tokens)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_the_rotations_matter(tmp_path, capsys):
    """Without the same rotations the logits differ: the comparison above tests the hashing too."""
    model = hf_model(num_hashes=1, lsh_attn_chunk_length=4, num_buckets=8)
    model.save_pretrained(tmp_path / "hf")
    assert in_process(["import", "hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run")], capsys)[0] == 0
    tokens = torch.randint(0, 11, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(tokens).logits
    got, _ = imported_logits(tmp_path / "run", tokens)
    assert (got - expected).abs().max() > 1e-3


def test_byte_model_maps_trax_ids(tmp_path, capsys, monkeypatch):
    """A 258-id byte model (trax's enwik8 ids: byte + 2, 0 the start) imported for a byte task: the
    log-probabilities here are HF's renormalised without id 1."""
    model = hf_model(vocab_size=258, num_hashes=1, lsh_attn_chunk_length=8, num_buckets=4)
    model.save_pretrained(tmp_path / "hf")
    code, err = in_process(["import", "hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run"), "task=enwik8"],
                           capsys)
    assert code == 0, err
    ours = torch.randint(0, 257, (2, 32), generator=torch.Generator().manual_seed(2))
    theirs = torch.where(ours == 256, 0, ours + 2)
    with torch.no_grad():
        hf_logp = model(theirs).logits.log_softmax(-1)
    rows = torch.cat([torch.arange(2, 258), torch.zeros(1, dtype=torch.long)])
    expected = hf_logp[..., rows] - hf_logp[..., rows].logsumexp(-1, keepdim=True)
    use_hf_rotations(monkeypatch)
    got, cfg = imported_logits(tmp_path / "run", ours)
    assert cfg.task.name == "enwik8" and cfg.task.seq_len == 32
    torch.testing.assert_close(got.log_softmax(-1), expected, atol=1e-5, rtol=0)


def test_eval_and_resume_take_the_imported_folder(tmp_path, capsys):
    model = hf_model(num_hashes=2, lsh_attn_chunk_length=8, num_buckets=4)
    model.save_pretrained(tmp_path / "hf")
    out = run_cli(["import", "hf", str(tmp_path / "hf")], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    [folder] = (tmp_path / "outputs" / "synthetic").iterdir()
    assert folder.name.endswith("_hf-hf") and (folder / "config.yaml").is_file()
    record = json.loads((folder / "import.json").read_text())
    assert record["hf_config"]["num_hashes"] == 2
    evaluated = run_cli(["eval", f"checkpoint={folder}", "max_batches=1", "device=cpu", "progress=none",
                         f"output={tmp_path / 'eval.json'}"], cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["step"] == 0
    resume_line = next(line for line in out.stdout.splitlines() if "continue training:" in line)
    command = resume_line.split("reformer run ", 1)[1]
    import shlex

    args = [*shlex.split(command), "trainer.max_steps=2", "trainer.device=cpu", "trainer.progress=plain",
            "logger=none", "trainer.final_eval_batches=1", "task.eval_sequences=8"]
    trained = run_cli(["run", *args], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "step-00000000.pt at step 0" in (folder / "reformer.log").read_text()
    assert (folder / "checkpoints" / "step-00000002.pt").is_file()
