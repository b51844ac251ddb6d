"""A transformers `ReformerConfig` (config.json) as `reformer run` overrides describing the same model.

What each setting becomes (docs/hf-import.md has the table and the reasons):

* sizes: hidden_size -> model.d_model, feed_forward_size -> d_ff, num_attention_heads -> n_heads,
  attention_head_size -> d_head, len(attn_layers) -> n_layers, hidden_act -> ff_activation,
  layer_norm_eps -> model.layer_norm_eps; always layer=reversible (HF's encoder is reversible, its
  final LayerNorm and LM head read [Y1; Y2], width 2 * hidden_size).
* positions: axial_pos_embds -> model.positions=axial with axial_pos_shape / axial_pos_embds_dim,
  else learned positions (the first task.seq_len rows of HF's table).
* layers: attn_layers names each layer's attention. All "lsh": attention=lsh; all "local":
  attention=local; both: attention=lsh with model.attn_layers=attn_layers and the local layers'
  settings under model.attn_settings.local.
* LSH: num_hashes -> attention.n_rounds, lsh_attn_chunk_length -> chunk_length,
  lsh_num_chunks_before -> n_chunks_before, num_buckets -> n_buckets (an int or a factor list; left
  null in config.json it is what HF would set on its first forward at task.seq_len), is_decoder ->
  causal, and always wrap_lookback=true, attend_across_buckets=true, dedup=false: HF's semantics.
* local: local_attn_chunk_length -> chunk_length, local_num_chunks_before -> n_chunks_before,
  local_attention_probs_dropout_prob -> dropout; is_decoder -> causal (local_num_chunks_after > 0
  and a non-causal local layer that looks at other chunks are refused: HF wraps the window around
  the sequence's ends, which this project's local attention does not).
* chunking: chunk_size_feed_forward / chunk_size_lm_head (tokens per chunk) -> model.ff_chunks /
  loss_chunks (number of chunks; numerically the same either way).
* dropout: hidden_dropout_prob -> model.dropout, lsh_attention_probs_dropout_prob and
  local_attention_probs_dropout_prob -> each layer type's attention dropout.

A setting with no equivalent here is a UserError naming it. No torch here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..attention.registry import spec_of
from ..errors import UserError

LM_ARCHITECTURES = ("ReformerModelWithLMHead", "ReformerModel")
# transformers' attn_layers vocabulary: the names config.json gives its two attention layers (a
# foreign format's strings, kept as they are). Each is computed here by the attention type of ours
# that `our_type` asks the registry for.
HF_LSH, HF_LOCAL = "lsh", "local"
LAYER_KINDS = (HF_LSH, HF_LOCAL)  # the attn_layers entries transformers knows
ACTIVATIONS = ("relu", "gelu")  # HF's "gelu" is the exact (erf) GELU, as torch's F.gelu


def read_config(folder: Path) -> dict:
    """config.json of a saved transformers model folder, checked to be a Reformer language model."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"{folder}: no such folder (a saved transformers Reformer: config.json and its weights)")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder (give the folder holding config.json and the weights)")
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{folder} holds no config.json: not a saved transformers model")
    try:
        hf = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path} cannot be read as JSON ({type(exc).__name__})") from None
    if not isinstance(hf, dict):
        raise UserError(f"{path} is not a JSON object")
    if hf.get("model_type") != "reformer":
        raise UserError(f"{path}: model_type {hf.get('model_type')!r} is not a Reformer (model_type 'reformer')")
    for name in hf.get("architectures") or []:
        if name not in LM_ARCHITECTURES:
            raise UserError(f"{path}: architecture {name} is not supported (only a language model:"
                            f" {', '.join(LM_ARCHITECTURES)})")
    return hf


def our_type(kind: str) -> str:
    """The attention type (its registry name) computing transformers' layer `kind`: the registry's
    spec of that name, transformers having named its two layers as this project names the types."""
    return spec_of(kind).name


def setting(hf: dict, key: str, default: Any = None) -> Any:
    """A config.json value, with transformers' ReformerConfig default when the file omits it."""
    return hf.get(key, DEFAULTS.get(key, default))


# transformers' ReformerConfig defaults for the keys read here (a config.json may omit any of them)
DEFAULTS: dict[str, Any] = {
    "attention_head_size": 64, "attn_layers": [HF_LOCAL, HF_LSH, HF_LOCAL, HF_LSH, HF_LOCAL, HF_LSH],
    "axial_pos_embds": True, "axial_pos_shape": [64, 64], "axial_pos_embds_dim": [64, 192],
    "chunk_size_lm_head": 0, "chunk_size_feed_forward": 0, "feed_forward_size": 512, "hash_seed": None,
    "hidden_act": "relu", "hidden_dropout_prob": 0.05, "hidden_size": 256, "is_decoder": False,
    "layer_norm_eps": 1e-12, "local_attn_chunk_length": 64, "local_attention_probs_dropout_prob": 0.05,
    "local_num_chunks_before": 1, "local_num_chunks_after": 0, "lsh_attn_chunk_length": 64,
    "lsh_attention_probs_dropout_prob": 0.0,
    "lsh_num_chunks_before": 1, "lsh_num_chunks_after": 0, "max_position_embeddings": 4096,
    "num_attention_heads": 12, "num_buckets": None, "num_hashes": 1, "vocab_size": 320,
}


def check_expressible(hf: dict) -> None:
    """UserError (one line naming the setting) for what this project cannot compute."""
    layers = list(setting(hf, "attn_layers"))
    if not layers:
        raise UserError("config.json: attn_layers is empty")
    unknown = sorted({kind for kind in layers if kind not in LAYER_KINDS})
    if unknown:
        raise UserError(f"config.json: attn_layers holds {unknown[0]!r}: only {' and '.join(map(repr, LAYER_KINDS))}"
                        " layers can be imported")
    if HF_LOCAL in layers:
        check_local(hf)
    if HF_LSH in layers:
        check_lsh(hf)
    if setting(hf, "hidden_act") not in ACTIVATIONS:
        raise UserError(f"config.json: hidden_act={setting(hf, 'hidden_act')!r} cannot be expressed here"
                        f" (model.ff_activation: {', '.join(ACTIVATIONS)})")
    if setting(hf, "axial_pos_embds") and len(setting(hf, "axial_pos_shape")) != len(setting(hf, "axial_pos_embds_dim")):
        raise UserError("config.json: axial_pos_shape and axial_pos_embds_dim have different numbers of axes")


def check_local(hf: dict) -> None:
    """UserError for local-attention settings this project's local attention cannot compute."""
    chunk, before, after = (setting(hf, k) for k in ("local_attn_chunk_length", "local_num_chunks_before",
                                                       "local_num_chunks_after"))
    if chunk is None or int(chunk) < 1:
        raise UserError(f"config.json: local_attn_chunk_length={chunk!r} cannot be expressed here (a positive"
                        " chunk length)")
    if not setting(hf, "is_decoder") and (before or after):
        key, value = ("local_num_chunks_before", before) if before else ("local_num_chunks_after", after)
        raise UserError(f"config.json: is_decoder=false with {key}={value} cannot be expressed here:"
                        " transformers wraps the local window around the ends of the sequence, this project's"
                        " local attention does not")
    if after:
        raise UserError(f"config.json: local_num_chunks_after={after} cannot be expressed here: a causal query"
                        " attends no later chunk (transformers' language model refuses it too)")

def check_lsh(hf: dict) -> None:
    """UserError for LSH settings this project's LSH attention cannot compute."""
    if setting(hf, "lsh_num_chunks_after"):
        raise UserError(f"config.json: lsh_num_chunks_after={setting(hf, 'lsh_num_chunks_after')} cannot be"
                        " expressed here: LSH chunks attend only to themselves and earlier chunks"
                        " (attention.n_chunks_before)")
    if setting(hf, "lsh_attn_chunk_length") is None:
        raise UserError("config.json: lsh_attn_chunk_length=null (unchunked LSH) cannot be expressed here")


def training_length(hf: dict) -> int:
    """The sequence length the model was made for: prod(axial_pos_shape) (HF trains at exactly that
    length) or max_position_embeddings."""
    if setting(hf, "axial_pos_embds"):
        return math.prod(int(n) for n in setting(hf, "axial_pos_shape"))
    return int(setting(hf, "max_position_embeddings"))


def chunk_lengths(hf: dict) -> list[int]:
    """The chunk lengths of the layer kinds attn_layers uses."""
    keys = {HF_LSH: "lsh_attn_chunk_length", HF_LOCAL: "local_attn_chunk_length"}
    return [int(setting(hf, keys[kind])) for kind in dict.fromkeys(setting(hf, "attn_layers"))]


def hf_padded_length(hf: dict, length: int) -> int:
    """The length transformers runs an input of `length` at: padded (with masked pad tokens) to a
    multiple of the least common multiple of the layers' chunk lengths, unless it is no longer than
    the shortest chunk."""
    chunks = chunk_lengths(hf)
    multiple = math.lcm(*chunks)
    if length <= min(chunks) or length % multiple == 0:
        return length
    return -(-length // multiple) * multiple


def num_buckets_at(hf: dict, seq_len: int) -> Any:
    """config.json's num_buckets, or when it is null the value HF sets on its first forward pass at
    `seq_len` (LSHSelfAttention._set_num_buckets): the power of two at or below 2 * length / chunk,
    split into two factors above 2 * max(sqrt(max_position_embeddings / chunk), chunk). HF pads an
    input first (hf_padded_length); an input no longer than one chunk is never hashed
    (every key is attended), so any bucket count computes the same: 2."""
    given = setting(hf, "num_buckets")
    if given is not None:
        return [int(f) for f in given] if isinstance(given, (list, tuple)) else int(given)
    chunk = int(setting(hf, "lsh_attn_chunk_length"))
    padded = hf_padded_length(hf, seq_len)
    if padded <= chunk:
        return 2
    power = (2 * (padded // chunk)).bit_length() - 1
    limit = 2 * max(int((int(setting(hf, "max_position_embeddings")) // chunk) ** 0.5), chunk)
    if 2**power > limit:
        return [2 ** (power // 2), 2 ** (power - power // 2)]
    return 2**power


def _value(value: Any) -> str:
    """A value in Hydra's override syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def _chunks(tokens_per_chunk: int, seq_len: int) -> int:
    return max(1, -(-seq_len // tokens_per_chunk)) if tokens_per_chunk else 1


def lsh_settings(hf: dict, seq_len: int) -> dict[str, Any]:
    """The attention=lsh settings of HF's LSH layers."""
    return {
        "n_rounds": int(setting(hf, "num_hashes")),
        "chunk_length": int(setting(hf, "lsh_attn_chunk_length")),
        "n_buckets": num_buckets_at(hf, seq_len),
        "n_chunks_before": int(setting(hf, "lsh_num_chunks_before")),
        "wrap_lookback": True,
        "attend_across_buckets": True,
        "dedup": False,
        "dropout": float(setting(hf, "lsh_attention_probs_dropout_prob") or 0.0),
    }


def local_settings(hf: dict) -> dict[str, Any]:
    """The attention=local settings of HF's local layers (check_local first)."""
    return {
        "chunk_length": int(setting(hf, "local_attn_chunk_length")),
        "n_chunks_before": int(setting(hf, "local_num_chunks_before")),
        "n_chunks_after": int(setting(hf, "local_num_chunks_after")),
        "dropout": float(setting(hf, "local_attention_probs_dropout_prob") or 0.0),
    }


def attention_overrides(hf: dict, seq_len: int) -> dict[str, Any]:
    """attention= and its settings; with both layer kinds, attention=lsh and the local layers named in
    model.attn_layers with their settings under model.attn_settings.local (a key Hydra adds: `+`)."""
    layers = [str(kind) for kind in setting(hf, "attn_layers")]
    main = HF_LSH if HF_LSH in layers else HF_LOCAL
    values: dict[str, Any] = {"attention": our_type(main)}
    settings = lsh_settings(hf, seq_len) if main == HF_LSH else local_settings(hf)
    values.update({f"attention.{key}": value for key, value in settings.items()})
    values["attention.causal"] = bool(setting(hf, "is_decoder"))
    if len(set(layers)) > 1:
        values["model.attn_layers"] = [our_type(kind) for kind in layers]
        values.update({f"+model.attn_settings.{our_type(HF_LOCAL)}.{key}": value
                       for key, value in local_settings(hf).items()})
    return values


def model_overrides(hf: dict, seq_len: int) -> list[str]:
    """The `reformer run` overrides of the model, layer and attention groups (check_expressible first)."""
    values: dict[str, Any] = {
        "layer": "reversible",
        "model.d_model": int(setting(hf, "hidden_size")),
        "model.d_ff": int(setting(hf, "feed_forward_size")),
        "model.n_heads": int(setting(hf, "num_attention_heads")),
        "model.d_head": int(setting(hf, "attention_head_size")),
        "model.n_layers": len(setting(hf, "attn_layers")),
        "model.dropout": float(setting(hf, "hidden_dropout_prob")),
        "model.ff_activation": str(setting(hf, "hidden_act")),
        "model.layer_norm_eps": float(setting(hf, "layer_norm_eps")),
        "model.ff_chunks": _chunks(int(setting(hf, "chunk_size_feed_forward")), seq_len),
        "model.loss_chunks": _chunks(int(setting(hf, "chunk_size_lm_head")), seq_len),
        "model.tie_embeddings": False,
        **attention_overrides(hf, seq_len),
    }
    if setting(hf, "axial_pos_embds"):
        values["model.positions"] = "axial"
        values["model.axial_shape"] = [int(n) for n in setting(hf, "axial_pos_shape")]
        values["model.axial_dims"] = [int(n) for n in setting(hf, "axial_pos_embds_dim")]
    else:
        values["model.positions"] = "learned"
    return [f"{key}={_value(value)}" for key, value in values.items()]


def notes(hf: dict) -> list[str]:
    """What the import does not carry over exactly, one line each (printed by the command)."""
    lines = []
    if setting(hf, "hash_seed") is not None:
        lines.append(f"hash_seed={setting(hf, 'hash_seed')} is not carried over: LSH rotations here are drawn"
                     " from attention.eval_seed (evaluation) or the run's seed (training)")
    if not setting(hf, "is_decoder"):
        lines.append("is_decoder=false: the model is imported without a causal mask (attention.causal=false),"
                     " as transformers computes it")
    layers = set(setting(hf, "attn_layers"))
    before = int(setting(hf, "local_num_chunks_before") or 0)
    if HF_LOCAL in layers and before > 1:
        lines.append(f"local_num_chunks_before={before}: for an input of 2 to {before} local chunks transformers'"
                     " look-back wraps around and counts some keys twice, this project counts each once (longer"
                     " inputs are computed alike)")
    if layers == {HF_LOCAL, HF_LSH} and math.lcm(*chunk_lengths(hf)) > int(setting(hf, "lsh_attn_chunk_length")):
        multiple = math.lcm(*chunk_lengths(hf))
        lines.append(f"transformers pads an input to a multiple of {multiple} (the chunk lengths' least common"
                     " multiple), this project pads the LSH layers to a multiple of lsh_attn_chunk_length: for an"
                     f" input whose length is not a multiple of {multiple} the look-back of a hash round's first"
                     " chunk can reach other keys")
    if float(setting(hf, "hidden_dropout_prob")):
        lines.append("dropout (training only): hidden_dropout_prob becomes model.dropout, which this project"
                     " applies to the embedding, the residual branches and the feed-forward hidden layer")
    return lines
