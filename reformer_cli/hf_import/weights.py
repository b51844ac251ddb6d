"""transformers' Reformer weights -> this project's state dict (docs/hf-import.md).

The files: model.safetensors or pytorch_model.bin, or their sharded forms (an `.index.json` whose
`weight_map` names the shards). A .bin is a torch state dict read with `weights_only=True`.

Names (HF prefix `reformer.`, absent when a bare ReformerModel was saved; layer i):

    embeddings.word_embeddings.weight                   -> embed.weight (rows: the token map)
    embeddings.position_embeddings.weights.k            -> positions.tables.k ([1, .., n_k, .., d_k] -> [n_k, d_k])
    embeddings.position_embeddings.embedding.weight     -> positions.table (its first seq_len rows)
    encoder.layers.i.attention.layer_norm               -> stack.blocks.i.attention.norm
    encoder.layers.i.attention.self_attention.query_key -> stack.blocks.i.attention.attention.to_qk (LSH)
    encoder.layers.i.attention.self_attention.query     -> stack.blocks.i.attention.attention.to_q (local)
    encoder.layers.i.attention.self_attention.key       -> stack.blocks.i.attention.attention.to_k (local)
    encoder.layers.i.attention.self_attention.value     -> stack.blocks.i.attention.attention.to_v
    encoder.layers.i.attention.output.dense             -> stack.blocks.i.attention.attention.to_out
    encoder.layers.i.feed_forward.layer_norm            -> stack.blocks.i.feedforward.norm
    encoder.layers.i.feed_forward.dense.dense           -> stack.blocks.i.feedforward.feedforward.w_in
    encoder.layers.i.feed_forward.output.dense          -> stack.blocks.i.feedforward.feedforward.w_out
    encoder.layer_norm (width 2 * hidden_size)          -> norm
    lm_head.decoder.weight, lm_head.decoder.bias        -> head.weight, head.bias (rows: the token map;
                                                           lm_head.bias where decoder.bias is absent)

Every weight this project's model needs must be there with the expected shape (UserError naming
the first that is not); HF weights left over (other heads) are refused too, never dropped silently.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from .safetensors_file import load_safetensors

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PREFIX = "reformer."

LAYER_PARTS = {
    "attention.layer_norm": "attention.norm",
    "attention.self_attention.query_key": "attention.attention.to_qk",
    "attention.self_attention.query": "attention.attention.to_q",
    "attention.self_attention.key": "attention.attention.to_k",
    "attention.self_attention.value": "attention.attention.to_v",
    "attention.output.dense": "attention.attention.to_out",
    "feed_forward.layer_norm": "feedforward.norm",
    "feed_forward.dense.dense": "feedforward.feedforward.w_in",
    "feed_forward.output.dense": "feedforward.feedforward.w_out",
}


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: torch raises many kinds
        raise UserError(f"{path} cannot be read as a torch state dict ({type(exc).__name__})") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise UserError(f"{path} is not a state dict of tensors")
    return loaded


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a saved model folder (safetensors first), or a UserError."""
    for name in WEIGHT_FILES:
        index = folder / f"{name}.index.json"
        if (folder / name).is_file():
            return [folder / name]
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise UserError(f"{index} cannot be read (a JSON object with a weight_map)") from None
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise UserError(f"{folder}: the shard {missing[0]} named in {index.name} is missing")
            return [folder / s for s in shards]
    raise UserError(f"{folder} holds no weights ({' or '.join(WEIGHT_FILES)})")


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's weight files, names without the `reformer.` prefix."""
    tensors: dict[str, torch.Tensor] = {}
    for path in weight_files(Path(folder)):
        tensors.update(_load_file(path))
    return {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in tensors.items()}


def token_rows(hf_vocab: int, vocab: int, byte_task: bool) -> tuple[torch.Tensor, str | None]:
    """(for each token id here, the HF row holding it; a line describing a non-identity map).

    Equal vocabularies map id to id. A byte task (vocab 257: bytes 0..255, then the start token)
    with an HF vocabulary of 258 (trax's enwik8: byte b is id b + 2, id 0 the pad that also starts
    every sequence, id 1 an unused EOS) takes byte b from row b + 2 and the start token from row 0;
    HF's id 1 is left out, so the softmax here runs over the other 257 outputs."""
    if hf_vocab == vocab:
        return torch.arange(vocab), None
    if byte_task and hf_vocab == 258 and vocab == 257:
        rows = torch.cat([torch.arange(2, 258), torch.zeros(1, dtype=torch.long)])
        return rows, ("tokens: byte b is HF id b + 2 and the start token HF id 0 (trax's enwik8 ids); HF id 1"
                      " (EOS, unused) is left out of the output layer")
    raise UserError(f"config.json: vocab_size={hf_vocab} does not fit the task's {vocab} tokens"
                    " (choose the task the model was trained on, e.g. task=enwik8 for a byte model of 258 ids)")


def _axial_table(weight: torch.Tensor, axis: int, name: str) -> torch.Tensor:
    """HF's [1, .., n_axis, .., 1, d] parameter as this project's [n_axis, d] table."""
    if weight.dim() < 2 or any(n != 1 for i, n in enumerate(weight.shape[:-1]) if i != axis):
        raise UserError(f"weight {name} has shape {list(weight.shape)}: not an axial position table of axis {axis}")
    return weight.reshape(weight.shape[axis], weight.shape[-1])


def map_weights(hf: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], n_layers: int,
                rows: torch.Tensor, seq_len: int) -> dict[str, torch.Tensor]:
    """This project's state dict from HF's tensors (`expected`: the model's names and shapes)."""
    hf = dict(hf)

    def take(name: str) -> torch.Tensor:
        if name not in hf:
            raise UserError(f"the weights lack {PREFIX if not name.startswith('lm_head') else ''}{name}"
                            " (not a ReformerModelWithLMHead of this config.json)")
        return hf.pop(name)

    out: dict[str, torch.Tensor] = {}
    embed = take("embeddings.word_embeddings.weight")
    if embed.dim() != 2 or embed.shape[0] <= int(rows.max()):
        raise UserError(f"weight embeddings.word_embeddings.weight has shape {list(embed.shape)}, which does not"
                        " fit config.json's vocab_size")
    out["embed.weight"] = embed[rows]
    if "positions.tables.0" in expected:
        k = 0
        while f"positions.tables.{k}" in expected:
            out[f"positions.tables.{k}"] = _axial_table(take(f"embeddings.position_embeddings.weights.{k}"), k,
                                                        f"embeddings.position_embeddings.weights.{k}")
            k += 1
    elif "positions.table" in expected:
        out["positions.table"] = take("embeddings.position_embeddings.embedding.weight")[:seq_len]
    for i in range(n_layers):
        for theirs, ours in LAYER_PARTS.items():
            for kind in ("weight", "bias"):
                target = f"stack.blocks.{i}.{ours}.{kind}"
                if target in expected:
                    out[target] = take(f"encoder.layers.{i}.{theirs}.{kind}")
    out["norm.weight"], out["norm.bias"] = take("encoder.layer_norm.weight"), take("encoder.layer_norm.bias")
    head = take("lm_head.decoder.weight")
    # the forward adds lm_head.decoder.bias; older transformers tied lm_head.bias to it (a file may
    # hold only that one), newer ones keep lm_head.bias as an unused parameter
    decoder_bias, bias = hf.pop("lm_head.decoder.bias", None), hf.pop("lm_head.bias", None)
    bias = decoder_bias if decoder_bias is not None else bias
    if bias is None:
        raise UserError("the weights lack lm_head.bias (not a ReformerModelWithLMHead of this config.json)")
    if head.dim() != 2 or head.shape[0] <= int(rows.max()) or bias.shape != head.shape[:1]:
        raise UserError(f"weight lm_head.decoder.weight has shape {list(head.shape)}, which does not fit"
                        " config.json's vocab_size")
    out["head.weight"], out["head.bias"] = head[rows], bias[rows]
    if hf:
        raise UserError(f"the weights hold {sorted(hf)[0]}, which this project's model has no place for"
                        f" ({len(hf)} such tensor(s)): not a ReformerModelWithLMHead of this config.json")
    for name, shape in expected.items():
        got = tuple(out[name].shape) if name in out else None
        if got != tuple(shape):
            raise UserError(f"weight for {name} has shape {list(got) if got else 'absent'}, config.json"
                            f" describes {list(shape)}: the weights do not belong to this config.json")
    return {name: out[name].to(torch.float32).contiguous() for name in expected}
