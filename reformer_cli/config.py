"""Typed config schemas, registered with Hydra, and the semantic checks Hydra cannot express.

Every option file in `conf/<group>/` starts from one of the schemas below (its defaults list names
`/schema/<group>/<name>@_here_`), so Hydra rejects an unknown key or a value of the wrong type
while composing, before any work starts. `validate()` then checks ranges and cross-field rules and
raises `ConfigError` with one line. Nothing here imports torch: errors come back in well under a
second.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional

from .attention import registry as attention_registry
from .attention.per_layer import layer_attentions
from .attention.registry import complete_stored_attention, validate_attention  # noqa: F401  (their home)
from .attention.specs.full import FullAttentionConfig  # noqa: F401  (the schemas of attention=full, =lsh)
from .attention.specs.lsh import LSHAttentionConfig  # noqa: F401
from .errors import ConfigError
from .primitives.devices import is_device_name, not_a_device
from .primitives.task_registry import find_task, task_spec, task_specs

# --------------------------------------------------------------------------------------- schemas


@dataclass
class ModelConfig:
    """ReformerLM size and layout (docs/model.md, "ReformerLM")."""

    d_model: int = 256
    d_ff: int = 256
    n_heads: int = 4
    d_head: Optional[int] = None  # default: d_model // n_heads
    n_layers: int = 1
    dropout: float = 0.0  # embedding / residual dropout (replayed exactly by reversible layers)
    ff_activation: str = "relu"  # relu | gelu
    positions: str = "learned"  # learned | axial | none
    # learned positions: the table's init std. 0.02 is small beside the token embeddings'
    # N(0, 1); trax's positions (sinusoidal, or axial N(0, 1)) and HF's axial ones have unit
    # scale, and the Table 2 recipe uses 1.0 (a 1-layer model must learn position-to-position
    # attention there: at 0.02 it sits at chance several times longer).
    position_init_std: float = 0.02
    # Axial positions (trax AxialPositionalEncoding): prod(axial_shape) >= task.seq_len (the first
    # seq_len grid positions are used) and sum(axial_dims) == d_model. Left null, a two-axis shape
    # covering exactly task.seq_len and an even split are derived (model/axial.py, axial_layout).
    axial_shape: Optional[List[int]] = None
    axial_dims: Optional[List[int]] = None
    ff_chunks: int = 1  # feed-forward computed in this many chunks along the sequence (eq. 10)
    loss_chunks: int = 1  # output layer + loss computed in this many chunks along the sequence
    tie_embeddings: bool = False
    # the attention of each layer: null = `attention` in every layer; a list of attention names
    # (`[local, lsh]`), cycled over n_layers when shorter (attention/per_layer.py, docs/model.md)
    attn_layers: Optional[List[str]] = None
    # settings of the attentions in attn_layers other than `attention`'s type, by type
    # (`{local: {chunk_length: 128}}`); unset keys take that type's defaults
    attn_settings: Dict[str, Any] = field(default_factory=dict)
    # the epsilon of every LayerNorm (torch's default 1e-5; HF's Reformer configs use 1e-12, and an
    # imported checkpoint keeps its own: `reformer import hf`)
    layer_norm_eps: float = 1e-5


@dataclass
class LayerConfig:
    """standard: x + Attn(LN(x)), x + FF(LN(x)). reversible: Y1 = X1 + Attn(LN(X2)),
    Y2 = X2 + FF(LN(Y1)) with a backward that recomputes inputs from outputs."""

    name: str = "standard"
    # reversible only. true: the backward rebuilds each layer's inputs from its outputs (memory
    # constant in depth). false: the same coupling under ordinary autograd, activations stored
    # (the reference the gradient tests compare with; a fallback).
    recompute: bool = True


# The task schemas are each task's own (reformer_cli/tasks/, TaskSpec.schema), looked up by name in
# the task registry (primitives/task_registry.py).


@dataclass
class EarlyStopConfig:
    """Stop training when the periodic evaluation stops improving (off while patience is 0)."""

    patience: int = 0  # periodic evaluations without an improvement before stopping; 0 = never stop early
    min_delta: float = 0.0  # an improvement must beat the best so far by more than this


@dataclass
class TrainerConfig:
    max_steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1  # micro-batches per optimizer step
    optimizer: str = "adamw"  # adamw | adam | adafactor
    lr: float = 1e-3  # the peak learning rate
    betas: List[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-9
    weight_decay: float = 0.0
    # constant | rsqrt (linear warmup, then lr * sqrt(warmup / step): trax's
    # 'constant * linear_warmup * rsqrt_decay' with lr = constant / sqrt(warmup)) | cosine
    schedule: str = "rsqrt"
    # linear warmup to `lr`; null: a tenth of max_steps (optimization.warmup_of), so a short run
    # leaves its warmup too
    warmup_steps: Optional[int] = None
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 elsewhere) | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_every: int = 500
    # batches per periodic evaluation; 0 = the whole split. Fewer batches than the split has make
    # an estimate, recorded as `valid_estimate` (metrics.jsonl, W&B, summary.json's best)
    eval_batches: int = 8
    eval_batch_size: Optional[int] = None  # default: batch_size
    # batches for the final evaluation, recorded as `valid` (summary.json's final, the done line);
    # 0 = the whole split; null (the default) = the whole split, or 64 batches for a short run
    # (max_steps <= 100), which says so in one log line
    final_eval_batches: Optional[int] = None
    # splits evaluated at the end into summary.json (the paper reports enwik8 on test)
    final_splits: List[str] = field(default_factory=lambda: ["valid"])
    log_every: int = 10
    ckpt_every: int = 500
    keep_last: int = 3
    # also keep the checkpoint of the best periodic evaluation as checkpoints/best.pt (never pruned)
    keep_best: bool = False
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)
    progress: str = "auto"  # auto (a bar on a terminal, plain lines otherwise) | bar | plain | none
    # torch.compile the training forward (the whole model); slower on a CPU: results/compile_cpu.md
    compile: bool = False
    deterministic: bool = False  # torch.use_deterministic_algorithms


LOGGERS = ("wandb", "tensorboard", "csv")


@dataclass
class LoggerConfig:
    """The `logger` group: where the curves go besides metrics.jsonl. One schema for every option,
    each of which switches its own writer on, so that a list of options (`logger=[wandb,csv]`),
    whose nodes Hydra merges, switches on several (loggers.py)."""

    name: str = "none"  # the option chosen (the last of a list)
    wandb: bool = False  # Weights & Biases (offline unless logged in)
    tensorboard: bool = False  # event files in <run>/tensorboard/ (pip install 'reformer-cli[tensorboard]')
    csv: bool = False  # <run>/metrics.csv: step, metric, value
    # W&B's settings
    project: str = "reformer"
    entity: Optional[str] = None
    # auto: online when an API key is configured, offline otherwise. WANDB_MODE overrides it.
    mode: str = "auto"
    # seconds an online start may take (W&B's own default: 90); then the run logs offline instead
    init_timeout: float = 30.0
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class RunConfig:
    """The root of `reformer run`. Groups are typed by their own schemas above."""

    model: Any = None
    attention: Any = None
    layer: Any = None
    task: Any = None
    trainer: Any = None
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    run_name: Optional[str] = None  # default: built from the task and attention settings
    # null: start fresh. auto: continue the latest checkpoint of this run (or of an earlier run
    # of the same config under outputs/). A path: a run folder or a checkpoint file.
    resume: Optional[str] = None
    # the final valid metric a run returns to a sweeper that optimises (conf/hparams_search/)
    optimized_metric: Optional[str] = None


@dataclass
class EvalConfig:
    """The root of `reformer eval`: a trained checkpoint, evaluated under its own attention or
    another one (`attention=...` selects and overrides it, as in `reformer run`)."""

    checkpoint: Optional[str] = None  # a checkpoint file, or a run folder (its newest checkpoint)
    attention: Any = None  # null: the trained attention
    split: str = "valid"  # valid | test
    max_batches: int = 0  # 0 = the whole split
    batch_size: Optional[int] = None  # default: the run's trainer.eval_batch_size or batch_size
    device: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp32
    progress: str = "auto"  # auto | bar | plain | none
    output: Optional[str] = None  # the JSON record; default: eval.json in the eval's own folder
    # also measure the mean attention weight of each query on its own position (Table 2's
    # diagnostic; costs length / d_head extra attention calls per layer)
    self_weight: bool = False


SCHEMAS = {
    ("model", "model"): ModelConfig,
    ("layer", "layer"): LayerConfig,
    ("trainer", "trainer"): TrainerConfig,
    ("logger", "logger"): LoggerConfig,
}
# and one schema per attention type, from its spec (reformer_cli/attention/specs/)
SCHEMAS.update({("attention", name): spec.schema for name, spec in attention_registry.specs().items()})


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore as `schema/<group>/<name>` (idempotent), the
    registered tasks' too."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    attention = {("attention", name): spec.schema for name, spec in attention_registry.specs().items()}
    for (group, name), node in {**SCHEMAS, **attention}.items():
        cs.store(group=f"schema/{group}", name=name, node=node)
    for spec in task_specs():
        cs.store(group="schema/task", name=spec.name, node=spec.schema)


# ------------------------------------------------------------------------------------ validation

ACTIVATIONS = ("relu", "gelu")
POSITIONS = ("learned", "axial", "none")
OPTIMIZERS = ("adamw", "adam", "adafactor")
SCHEDULES = ("constant", "rsqrt", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")
PROGRESS = ("auto", "bar", "plain", "none")
WANDB_MODES = ("auto", "online", "offline", "disabled")
# the values W&B itself accepts for WANDB_MODE (`run` and `dryrun`: older names of online, offline)
WANDB_ENV_MODES = ("online", "offline", "disabled", "shared", "run", "dryrun")
PROJECT_FORBIDDEN = "/\\#?%:"  # W&B refuses a project name holding any of these, or over 128 characters
PROJECT_LENGTH = 128
RUN_GROUPS = ("task", "model", "attention", "layer", "trainer", "logger")


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(allowed)}")


def _positive(key: str, value: Any) -> None:
    if value is None or value < 1:
        raise ConfigError(f"{key}={value!r} must be a positive integer")


def _fraction(key: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{key}={value!r} must be in [0, 1)")


def _at_least(key: str, value: Any, low: float) -> None:
    """A finite number >= low (NaN and infinities are refused)."""
    if value is None or not math.isfinite(value) or value < low:
        raise ConfigError(f"{key}={value!r} must be a finite number >= {low:g}")


def _above(key: str, value: Any, low: float) -> None:
    """A finite number > low."""
    if value is None or not math.isfinite(value) or value <= low:
        raise ConfigError(f"{key}={value!r} must be a finite number > {low:g}")


def _seed(key: str, value: Any) -> None:
    if value is None or not 0 <= value < 2**63:
        raise ConfigError(f"{key}={value!r} must be an integer in [0, 2^63)")


# ------------------------------------------------------------------------------------ known keys

# the schema of each group's node, by the node's `name` (model, layer and trainer have one schema;
# a task's is its spec's)
def _schema_of(group: str, node: Any) -> Any:
    if group == "attention":
        spec = attention_registry.specs().get(node.get("name"))
        return None if spec is None else spec.schema
    name = group if (group, group) in SCHEMAS else node.get("name")
    if group == "task":
        spec = find_task(name)
        return spec.schema if spec is not None else None
    return SCHEMAS.get((group, name))


def _unknown_keys(node: Any, schema: Any, prefix: str) -> list[str]:
    """Keys of `node` that `schema` (a dataclass) does not define; `+key=value` adds such keys
    past Hydra's own check."""
    known = {f.name for f in fields(schema)}
    return [f"{prefix}{key}" for key in node.keys() if key not in known]


def check_known_keys(cfg: Any, root: Any = None) -> None:
    """Every key of a composed `reformer run` (or, with root=EvalConfig, `reformer eval`) config is
    one its schemas define; ConfigError (one line) naming the first that is not."""
    root = root or RunConfig
    unknown = _unknown_keys(cfg, root, "")
    for group in ("model", "attention", "layer", "task", "trainer", "logger"):
        node = cfg.get(group) if group in cfg else None
        if node is None or not hasattr(node, "keys"):
            continue
        schema = _schema_of(group, node)
        if schema is not None and is_dataclass(schema):
            unknown += _unknown_keys(node, schema, f"{group}.")
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        command = "eval" if root is EvalConfig else "run"
        raise ConfigError(
            f"unknown config key '{unknown[0]}'{more}: a leading + does not make a key known here"
            f" (list the keys with: reformer {command} --cfg job)"
        )


def _runtime(prefix: str, node: Any) -> None:
    """`precision`, `progress` and `device` of a trainer or eval config."""
    _choice(f"{prefix}precision", node.precision, PRECISIONS)
    _choice(f"{prefix}progress", node.progress, PROGRESS)
    if not is_device_name(str(node.device)):
        raise ConfigError(not_a_device(f"{prefix}device", str(node.device)))


def validate_model(model: Any, seq_len: int) -> None:
    for key in ("d_model", "d_ff", "n_heads", "n_layers", "ff_chunks", "loss_chunks"):
        _positive(f"model.{key}", model[key])
    if model.d_head is None and model.d_model % model.n_heads:
        raise ConfigError(
            f"model.d_model={model.d_model} is not divisible by model.n_heads={model.n_heads};"
            " set model.d_head explicitly"
        )
    if model.d_head is not None:
        _positive("model.d_head", model.d_head)
    _fraction("model.dropout", model.dropout)
    _choice("model.ff_activation", model.ff_activation, ACTIVATIONS)
    _choice("model.positions", model.positions, POSITIONS)
    _above("model.position_init_std", getattr(model, "position_init_std", 0.02), 0)
    _above("model.layer_norm_eps", getattr(model, "layer_norm_eps", 1e-5), 0)
    if model.positions == "axial":
        validate_axial(model, seq_len)


def validate_axial(model: Any, seq_len: int) -> None:
    """Checks on `model.axial_shape` / `model.axial_dims` (trax AxialPositionalEncoding). What is left
    null is derived by the model (model/axial.py, `axial_layout`): two axes covering exactly
    `seq_len`, and d_model split evenly over the axes. prod(shape) must be at least task.seq_len
    (a sequence uses the first seq_len positions of the grid; trax requires equality, a longer grid
    lets one model config run at shorter lengths) and sum(dims) must be d_model."""
    shape = None if model.axial_shape is None else [int(n) for n in model.axial_shape]
    dims = None if model.axial_dims is None else [int(n) for n in model.axial_dims]
    if shape is None and dims is not None and len(dims) != 2:
        raise ConfigError(f"model.axial_dims={dims} has {len(dims)} axes: set model.axial_shape too")
    if shape is not None and (not shape or any(n < 1 for n in shape)):
        raise ConfigError(f"model.axial_shape={shape} must be a non-empty list of positive integers")
    axes = 2 if shape is None else len(shape)
    if dims is None and model.d_model < axes:
        raise ConfigError(f"model.d_model={model.d_model} is too narrow to split over {axes} axial axes;"
                          " set model.axial_dims")
    if dims is not None and any(d < 1 for d in dims):
        raise ConfigError(f"model.axial_dims={dims} must be positive integers")
    if dims is not None and len(dims) != axes:
        raise ConfigError(
            f"model.axial_shape={shape} has {len(shape)} axes but model.axial_dims={dims} has {len(dims)}"
        )
    if shape is not None and math.prod(shape) < seq_len:
        raise ConfigError(
            f"model.axial_shape={shape} covers {math.prod(shape)} positions but task.seq_len={seq_len};"
            " their product must be at least the sequence length"
        )
    if dims is not None and sum(dims) != model.d_model:
        raise ConfigError(
            f"model.axial_dims={dims} sum to {sum(dims)} but model.d_model={model.d_model}; they must sum to it"
        )


def validate_trainer(trainer: Any) -> None:
    for key in ("max_steps", "batch_size", "grad_accum", "log_every", "eval_every", "ckpt_every", "keep_last"):
        _positive(f"trainer.{key}", trainer[key])
    if trainer.eval_batch_size is not None:
        _positive("trainer.eval_batch_size", trainer.eval_batch_size)
    if trainer.eval_batches < 0 or (trainer.final_eval_batches or 0) < 0:
        raise ConfigError("trainer.eval_batches and trainer.final_eval_batches must be >= 0")
    _at_least("trainer.early_stop.patience", trainer.early_stop.patience, 0)
    _at_least("trainer.early_stop.min_delta", trainer.early_stop.min_delta, 0)
    for split in trainer.final_splits:
        _choice("trainer.final_splits", split, ("valid", "test"))
    if trainer.warmup_steps is not None and trainer.warmup_steps < 0:
        raise ConfigError(f"trainer.warmup_steps={trainer.warmup_steps} must be >= 0")
    _above("trainer.lr", trainer.lr, 0)
    if len(trainer.betas) != 2 or not all(0.0 <= b < 1.0 for b in trainer.betas):
        raise ConfigError(f"trainer.betas={list(trainer.betas)} must be two numbers in [0, 1)")
    _above("trainer.eps", trainer.eps, 0)
    _at_least("trainer.weight_decay", trainer.weight_decay, 0)
    _at_least("trainer.grad_clip", trainer.grad_clip, 0)
    _choice("trainer.optimizer", trainer.optimizer, OPTIMIZERS)
    _choice("trainer.schedule", trainer.schedule, SCHEDULES)
    _runtime("trainer.", trainer)


def validate_task(task: Any) -> None:
    """The sequence length of every task, then the task's own checks (its spec's `check`)."""
    _positive("task.seq_len", task.seq_len)
    task_spec(task.name).check(task)


def validate_logger(logger: Any) -> None:
    if logger.wandb:
        _choice("logger.mode", logger.mode, WANDB_MODES)
        timeout = logger.get("init_timeout", 30.0)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"logger.init_timeout={timeout} must be a positive number of seconds")
        problem = wandb_problem(logger)
        if problem is not None:
            raise ConfigError(problem)


def wandb_problem(cfg: Any) -> str | None:
    """Why W&B would refuse to start with the `logger` node `cfg` in this environment (None if it
    would not): checked before training, so a typo costs no run."""
    project = cfg.get("project")
    if project is not None:
        found = sorted({c for c in str(project) if c in PROJECT_FORBIDDEN})
        if found or len(str(project)) > PROJECT_LENGTH or not str(project).strip():
            shown = str(project) if len(str(project)) <= 60 else str(project)[:60] + "..."
            return (f"logger.project='{shown}' is not a W&B project name: at most {PROJECT_LENGTH} characters,"
                    f" not empty, none of {' '.join(PROJECT_FORBIDDEN)} (a team goes in logger.entity)")
    env = os.environ.get("WANDB_MODE")
    if env and env not in WANDB_ENV_MODES:
        shown = env if len(env) <= 60 else env[:60] + "..."
        return (f"WANDB_MODE='{shown}' is not one of: {', '.join(WANDB_ENV_MODES)}; unset it, or choose with"
                " logger.mode=online|offline|disabled (or logger=none)")
    return None


def validate_eval(cfg: Any) -> None:
    """Checks on a composed `reformer eval` config (the attention is checked once it is merged
    with the trained one)."""
    if cfg.checkpoint is None or not str(cfg.checkpoint).strip():
        raise ConfigError("checkpoint=PATH is required (a checkpoint file or a run folder)")
    _choice("split", cfg.split, ("valid", "test"))
    if cfg.max_batches < 0:
        raise ConfigError(f"max_batches={cfg.max_batches} must be >= 0 (0 = the whole split)")
    if cfg.batch_size is not None:
        _positive("batch_size", cfg.batch_size)
    _runtime("", cfg)
    check_known_keys(cfg, EvalConfig)


def _group_removed(group: str) -> ConfigError:
    return ConfigError(f"the config group '{group}' is required: ~{group} cannot remove it;"
                       f" choose an option with {group}=<name>")


def check_removed_groups(overrides: list[str]) -> None:
    """`~model` (or `~model=tiny`) on a `reformer run` command line: one line before Hydra composes
    (the output folder's pattern names the task, so composing would fail on it first)."""
    for override in overrides:
        match = re.fullmatch(r"~(\w+)(=.*)?", override)
        if match and match.group(1) in RUN_GROUPS:
            raise _group_removed(match.group(1))


def validate(cfg: Any) -> None:
    """Semantic checks on a composed `reformer run` config; raises ConfigError (one line)."""
    for group in RUN_GROUPS:
        if cfg.get(group) is None:
            raise _group_removed(group)
    check_known_keys(cfg)
    _seed("seed", cfg.seed)
    validate_task(cfg.task)
    validate_model(cfg.model, cfg.task.seq_len)
    validate_attention(cfg.attention, cfg.task.seq_len)
    for layer, attention in enumerate(layer_attentions(cfg.model, cfg.attention)):
        if attention is not cfg.attention:
            try:
                validate_attention(attention, cfg.task.seq_len)
            except ConfigError as exc:
                raise ConfigError(f"layer {layer} ({attention.name}): {exc}") from None
    _choice("layer.name", cfg.layer.name, ("standard", "reversible"))
    validate_trainer(cfg.trainer)
    validate_logger(cfg.logger)
    if cfg.resume is not None and not str(cfg.resume).strip():
        raise ConfigError("resume must be null, 'auto' or a path")
