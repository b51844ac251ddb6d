"""`reformer import hf` on folders it cannot import: one line each, exit 2, nothing written. The
saved models are written here by hand (config.json and a torch .bin or a .safetensors file), so
these tests need no transformers; they also show the files are read without it."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from reformer_cli.hf_import.safetensors_file import load_safetensors

from ..conftest import in_process

CONFIG = {"model_type": "reformer", "architectures": ["ReformerModelWithLMHead"], "attn_layers": ["lsh"],
          "hidden_size": 8, "feed_forward_size": 12, "num_attention_heads": 2, "attention_head_size": 4,
          "axial_pos_embds": True, "axial_pos_shape": [4, 4], "axial_pos_embds_dim": [4, 4], "vocab_size": 5,
          "is_decoder": True, "num_hashes": 2, "lsh_attn_chunk_length": 4, "num_buckets": 4,
          "hidden_dropout_prob": 0.0}


def weights(d=8, ff=12, vocab=5):
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    p = "reformer."
    w = {f"{p}embeddings.word_embeddings.weight": r(vocab, d),
         f"{p}embeddings.position_embeddings.weights.0": r(4, 1, 4),
         f"{p}embeddings.position_embeddings.weights.1": r(1, 4, 4),
         f"{p}encoder.layer_norm.weight": r(2 * d), f"{p}encoder.layer_norm.bias": r(2 * d),
         "lm_head.decoder.weight": r(vocab, 2 * d), "lm_head.decoder.bias": r(vocab), "lm_head.bias": r(vocab)}
    layer = f"{p}encoder.layers.0."
    w.update({f"{layer}attention.layer_norm.weight": r(d), f"{layer}attention.layer_norm.bias": r(d),
              f"{layer}attention.self_attention.query_key.weight": r(d, d),
              f"{layer}attention.self_attention.value.weight": r(d, d),
              f"{layer}attention.output.dense.weight": r(d, d),
              f"{layer}feed_forward.layer_norm.weight": r(d), f"{layer}feed_forward.layer_norm.bias": r(d),
              f"{layer}feed_forward.dense.dense.weight": r(ff, d), f"{layer}feed_forward.dense.dense.bias": r(ff),
              f"{layer}feed_forward.output.dense.weight": r(d, ff), f"{layer}feed_forward.output.dense.bias": r(d)})
    return w


def save_safetensors(tensors: dict, path) -> None:
    """The safetensors layout, written by hand (F32 only)."""
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        data = t.to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def saved(tmp_path, config=None, tensors=None, fmt="bin"):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG if config is None else config))
    tensors = weights() if tensors is None else tensors
    if fmt == "bin":
        torch.save(tensors, folder / "pytorch_model.bin")
    elif fmt == "safetensors":
        save_safetensors(tensors, folder / "model.safetensors")
    return folder


def imported(folder, tmp_path, capsys, *extra):
    code, err = in_process(["import", "hf", str(folder), "--out", str(tmp_path / "run"), *extra], capsys)
    return code, err.strip()


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_hand_written_files_import(tmp_path, capsys, fmt):
    folder = saved(tmp_path, fmt=fmt)
    code, err = imported(folder, tmp_path, capsys)
    assert code == 0, err
    from reformer_cli.records import load_checkpoint

    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000000.pt")
    w = weights()
    assert torch.equal(state["model"]["positions.tables.1"], w["reformer.embeddings.position_embeddings.weights.1"][0])
    assert torch.equal(state["model"]["head.bias"], w["lm_head.decoder.bias"])
    assert torch.equal(state["model"]["stack.blocks.0.attention.attention.to_qk.weight"],
                       w["reformer.encoder.layers.0.attention.self_attention.query_key.weight"])
    assert state["config"]["model"]["layer_norm_eps"] == 1e-12  # transformers' default, config.json omits it
    assert state["state"]["step"] == 0


def test_hand_written_local_layer_imports(tmp_path, capsys):
    """A local layer's separate query and key weights become to_q and to_k of attention=local."""
    w = weights()
    layer = "reformer.encoder.layers.0.attention.self_attention."
    w[f"{layer}query.weight"] = w.pop(f"{layer}query_key.weight")
    w[f"{layer}key.weight"] = -w[f"{layer}query.weight"]
    config = {**CONFIG, "attn_layers": ["local"], "local_attn_chunk_length": 4, "local_num_chunks_before": 2}
    code, err = imported(saved(tmp_path, config, w), tmp_path, capsys)
    assert code == 0, err
    from reformer_cli.records import load_checkpoint

    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000000.pt")
    assert torch.equal(state["model"]["stack.blocks.0.attention.attention.to_q.weight"], w[f"{layer}query.weight"])
    assert torch.equal(state["model"]["stack.blocks.0.attention.attention.to_k.weight"], w[f"{layer}key.weight"])
    attention = state["config"]["attention"]
    assert (attention["name"], attention["chunk_length"], attention["n_chunks_before"]) == ("local", 4, 2)
    assert attention["causal"] and attention["dropout"] == 0.05  # transformers' default, config.json omits it


def test_safetensors_reader_reads_dtypes_and_shapes(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1.5])}
    save_safetensors(tensors, tmp_path / "x.safetensors")
    loaded = load_safetensors(tmp_path / "x.safetensors")
    assert set(loaded) == {"a", "b"} and torch.equal(loaded["a"], tensors["a"]) and torch.equal(loaded["b"], tensors["b"])


def broken(config_change=None, drop=None, reshape=None, extra=None):
    config = {**CONFIG, **(config_change or {})}
    w = weights()
    if drop:
        del w[drop]
    if reshape:
        w[reshape] = torch.zeros(3, 3)
    if extra:
        w[extra] = torch.zeros(2)
    return config, w


CASES = {
    "not a Reformer": (broken({"model_type": "bert"}), "model_type 'bert' is not a Reformer"),
    "a classifier": (broken({"architectures": ["ReformerForSequenceClassification"]}),
                     "architecture ReformerForSequenceClassification is not supported"),
    "a layer kind transformers lacks": (broken({"attn_layers": ["lsh", "full"]}), "attn_layers holds 'full'"),
    "local layers without a causal mask": (broken({"attn_layers": ["local"], "is_decoder": False}),
                                           "is_decoder=false with local_num_chunks_before=1 cannot be expressed"),
    "local chunks after": (broken({"attn_layers": ["local"], "local_num_chunks_after": 1}),
                           "local_num_chunks_after=1 cannot be expressed here"),
    "chunks after": (broken({"lsh_num_chunks_after": 1}), "lsh_num_chunks_after=1 cannot be expressed here"),
    "activation": (broken({"hidden_act": "gelu_new"}), "hidden_act='gelu_new' cannot be expressed here"),
    "weight missing": (broken(drop="reformer.encoder.layers.0.attention.output.dense.weight"),
                       "the weights lack reformer.encoder.layers.0.attention.output.dense.weight"),
    "head missing": (broken(drop="lm_head.decoder.weight"), "the weights lack lm_head.decoder.weight"),
    "wrong shape": (broken(reshape="reformer.encoder.layers.0.attention.self_attention.value.weight"),
                    "weight for stack.blocks.0.attention.attention.to_v.weight has shape [3, 3], config.json"
                    " describes [8, 8]"),
    "left over": (broken(extra="classifier.bias"), "the weights hold classifier.bias"),
    "vocab of another task": (broken({"vocab_size": 7}), "weight embeddings.word_embeddings.weight has shape [5, 8]"),
}


@pytest.mark.parametrize("case", CASES)
def test_one_line_errors(tmp_path, capsys, case):
    (config, tensors), message = CASES[case]
    code, err = imported(saved(tmp_path, config, tensors), tmp_path, capsys)
    assert code == 2 and err.count("\n") == 0 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "run").exists()


def test_missing_folder_config_and_weights(tmp_path, capsys):
    code, err = imported(tmp_path / "nowhere", tmp_path, capsys)
    assert code == 2 and "nowhere: no such folder" in err and "\n" not in err
    (tmp_path / "empty").mkdir()
    code, err = imported(tmp_path / "empty", tmp_path, capsys)
    assert code == 2 and "holds no config.json" in err
    folder = saved(tmp_path, fmt=None)
    code, err = imported(folder, tmp_path, capsys)
    assert code == 2 and "holds no weights (model.safetensors or pytorch_model.bin)" in err
    (folder / "model.safetensors").write_bytes(b"\x05\x00")
    code, err = imported(folder, tmp_path, capsys)
    assert code == 2 and "is not a readable safetensors file" in err and "\n" not in err


def test_a_byte_model_for_the_synthetic_task_is_refused(tmp_path, capsys):
    code, err = imported(saved(tmp_path), tmp_path, capsys, "task=synthetic", "task.vocab_size=9")
    assert code == 2 and "vocab_size=5 does not fit the task's 9 tokens" in err


def test_a_folder_with_a_run_is_refused(tmp_path, capsys):
    folder = saved(tmp_path)
    assert imported(folder, tmp_path, capsys)[0] == 0
    code, err = imported(folder, tmp_path, capsys)
    assert code == 2 and "already holds a run's records" in err
