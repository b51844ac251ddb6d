"""Evaluation, beside training: a model on a task split (`evaluate`, used by the trainer), and a
trained checkpoint, optionally under another attention, as the paper's Table 2 does
(`evaluate_checkpoint`: load the trained model, merge the attention settings, label, evaluate,
write the record), used by `reformer eval`, the batch evaluator and `reformer reproduce`.

Which attention is evaluated:
* no `attention...` argument: the trained attention, unchanged;
* `attention.<key>=...` alone: the trained attention with only those keys changed
  (`attention.n_rounds=8 attention.eval_seed=3` on an LSH-trained model);
* `attention=<name>` of the trained type: the same, the trained settings plus the keys given;
* `attention=<other name>`: that option's defaults plus the keys given, keeping the trained
  `causal`; `attention=full` on a shared-QK model (LSH, or full with shared QK) is full attention
  with shared QK (the only full attention those weights define) unless `attention.shared_qk` is given.

The record (`eval.json` in the eval's own folder, or `output=PATH`) holds the checkpoint, both
attentions, the split, the metrics and the number of weighted targets, the seed, device, date, code
version and task description: one row of Table 2. `attention_label` names an attention setting
everywhere (records, tables, run names); with `model.attn_layers` a record's labels join the
layers' labels as the run's name does (`naming.model_attention_label`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import OmegaConf

from .attention.registry import spec_of
from .config import EvalConfig, complete_stored_attention, validate_attention, validate_eval
from .distributed import World, all_reduce_sum
from .errors import UserError
from .model.reformer import ReformerLM, build_model, count_parameters
from .naming import attention_label  # noqa: F401  (the label's home is naming.py, without torch)
from .naming import model_attention_label
from .primitives.context import derive_seed
from .progress import make_progress
from .records import (
    check_writable, checkpoint_type_problem, code_version, find_checkpoint, load_checkpoint, write_json_atomic,
)
from .resume import checkpoint_candidates, load_usable_checkpoint
from .runtime import autocast, device_name, resolve_precision, select_device
from .tasks import build_task
from .tasks.base import Task

log = logging.getLogger("reformer")

_loaded: dict[Path, dict] = {}  # checkpoint file -> its contents (read once per process)
_chosen: dict[Path, Path] = {}  # a run folder's newest checkpoint -> the usable one evaluated instead


def load_trained(checkpoint: str) -> tuple[Path, dict]:
    """(checkpoint file, contents) for a checkpoint file or a run folder: its newest usable
    checkpoint, as resuming chooses it (a truncated or damaged newer one is skipped with a warning)."""
    path = find_checkpoint(checkpoint)
    if path is None:
        raise UserError(f"checkpoint={checkpoint}: that run folder holds no checkpoint (checkpoints/step-N.pt)")
    saved = None
    newest = path.resolve()
    if newest in _chosen:
        path = _chosen[newest]
    elif Path(checkpoint).is_dir() and newest not in _loaded:
        path, saved, skipped = load_usable_checkpoint(checkpoint_candidates(checkpoint), doing="evaluate")
        for unusable, why in skipped:
            log.warning("checkpoint=%s: skipping %s (%s); evaluating %s, the newest usable checkpoint",
                        checkpoint, unusable.name, why, path.name)
        _chosen[newest] = path
    path = path.resolve()
    if path not in _loaded:
        saved = load_checkpoint(path) if saved is None else saved
        if not isinstance(saved, dict) or "model" not in saved or "config" not in saved:
            raise UserError(f"checkpoint {path} is not a reformer checkpoint (no model weights and config)")
        wrong = checkpoint_type_problem(saved)
        if wrong is not None or not isinstance((saved["config"] or {}).get("attention"), dict):
            raise UserError(f"checkpoint {path} is not a usable reformer checkpoint"
                            f" ({wrong or 'its config has no attention'}): it was edited or damaged")
        _loaded[path] = saved
    return path, _loaded[path]


def check_config_fits_weights(path: Path, run_cfg: Any, vocab_size: int, weights: dict) -> None:
    """UserError (one line) unless the model a checkpoint's stored config describes has exactly the
    stored weights' names and shapes. The model is laid out on the meta device (no memory), so an
    edited config (a vocabulary of 10**9) is refused before it makes building the model allocate
    hundreds of GB."""
    with torch.device("meta"):
        model = build_model(run_cfg, vocab_size, int(run_cfg.task.seq_len))
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
    names = sorted(set(expected) ^ set(stored)) or sorted(k for k in expected if expected[k] != stored[k])
    if not names:
        return
    name = names[0]

    def shown(shapes: dict) -> str:
        return f"[{', '.join(map(str, shapes[name]))}]" if name in shapes else "absent"

    raise UserError(
        f"checkpoint {path} does not fit its own config ({name}: {shown(stored)} stored, {shown(expected)} by"
        " the config): it was edited or damaged"
    )


def trained_run_config(saved: dict) -> tuple[Any, dict]:
    """(the run config a checkpoint stores, its attention completed, the attention keys filled in:
    those saved before they existed get the values the run trained with, said once in the log)."""
    stored, legacy = complete_stored_attention(dict(saved["config"]["attention"]))
    if legacy:
        log.info("checkpoint saved before %s existed: evaluated as trained, with %s", ", ".join(legacy),
                 " ".join(f"{k}={v}" for k, v in legacy.items()))
    return OmegaConf.create({**saved["config"], "attention": stored}), legacy


def trained_model(path: Path, saved: dict, run_cfg: Any, *, check_data: bool = True) -> tuple[ReformerLM, Task]:
    """The trained model (on the CPU, its weights loaded) and its task, from a checkpoint `load_trained`
    read and its `trained_run_config`; `check_data`: the task's data must be there (one line if not)."""
    task = build_task(run_cfg.task, int(run_cfg.seed))
    if check_data:
        task.check_data()
    check_config_fits_weights(path, run_cfg, task.vocab_size, saved["model"])
    model = build_model(run_cfg, task.vocab_size, task.seq_len)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as exc:
        raise UserError(f"checkpoint {path} does not fit its own config ({str(exc).splitlines()[0]})") from None
    _loaded.pop(path, None)  # a sweep over many checkpoints keeps none of them in memory
    return model, task


def merge_attention(trained: dict, chosen: dict | None, explicit: set[str]) -> dict:
    """The attention to evaluate (the rules of the module docstring)."""
    if chosen is None:
        return dict(trained)
    if chosen["name"] == trained["name"]:
        merged = {**chosen, **trained}  # trained values; keys a newer schema added keep defaults
    else:
        merged = dict(chosen)
        merged["causal"] = trained.get("causal", merged.get("causal", True))
        if "shared_qk" in merged and spec_of(trained).shares_qk(trained):
            merged["shared_qk"] = True  # the only form of the chosen attention these weights define
    for key in explicit:
        merged[key] = chosen[key]
    return merged


def evaluate_checkpoint(cfg: EvalConfig, explicit: set[str], out: Path, safe: Path | None = None) -> dict:
    """Evaluate `cfg` (a composed eval config; `explicit`: the attention keys its command line set,
    eval_arguments.EvalArguments.explicit) and write the record to `out` (checked writable before
    the work; with `safe`, the record is written there first, so a write to `out` that fails at
    the end loses nothing). Also used without a Hydra app, by `reformer reproduce` to evaluate one
    checkpoint several ways in one process."""
    validate_eval(cfg)
    check_writable(out)

    path, saved = load_trained(str(cfg.checkpoint))
    run_cfg, legacy = trained_run_config(saved)
    trained = OmegaConf.to_container(run_cfg.attention, resolve=True)
    chosen = None if cfg.attention is None else OmegaConf.to_container(cfg.attention, resolve=True)
    evaluated = merge_attention(trained, chosen, explicit)
    evaluated_cfg = OmegaConf.create(evaluated)
    validate_attention(evaluated_cfg, int(run_cfg.task.seq_len))

    device = select_device(str(cfg.device), "device")
    precision = resolve_precision(cfg.precision, device)
    model, task = trained_model(path, saved, run_cfg)
    model.to(device)
    if evaluated != trained:
        model.set_attention(evaluated_cfg)

    t = run_cfg.trainer
    batch_size = int(cfg.batch_size or t.get("eval_batch_size") or t.batch_size)
    seed = eval_seed_of(evaluated_cfg)
    total = task.eval_batch_count(cfg.split, batch_size) or 0
    if cfg.max_batches:
        total = min(total, cfg.max_batches) if total else cfg.max_batches
    # with model.attn_layers, the labels of all layers' attentions, as in the run's name
    trained_label, evaluated_label = model_attention_label(run_cfg), model_attention_label(run_cfg, evaluated_cfg)
    label = f"{trained_label} -> {evaluated_label}"
    progress = make_progress(cfg.progress, total, f"eval {label}")
    progress.start(0)
    self_weight = {} if cfg.get("self_weight") else None
    try:
        loss_sum, weight_sum, correct_sum, batches = evaluate_totals(
            model, task, split=cfg.split, batch_size=batch_size, max_batches=cfg.max_batches,
            device=device, precision=precision, seed=seed, on_batch=progress.advance, self_weight=self_weight,
        )
    finally:
        progress.stop()
    metrics = task.metrics(loss_sum, weight_sum, correct_sum)
    record = {
        "kind": "eval",
        "checkpoint": str(path),
        "step": saved.get("state", {}).get("step"),
        "run_name": run_cfg.get("run_name"),
        "trained_attention": trained,
        "evaluated_attention": evaluated,
        # keys the checkpoint's config lacked (saved before they existed), set to what it trained with
        "trained_attention_filled_in": legacy,
        "trained_label": trained_label,
        "evaluated_label": evaluated_label,
        "split": cfg.split,
        "metric": task.metric,
        "metrics": metrics,
        # mean attention weight of a query on its own position (self_weight=true), or None
        "self_weight": self_weight,
        "n_targets": weight_sum,
        "batches": batches,
        "batch_size": batch_size,
        "max_batches": cfg.max_batches,
        "seed": seed,
        "train_seed": int(run_cfg.seed),
        "device": str(device),
        "device_name": device_name(device),
        "precision": precision,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "torch_version": torch.__version__,
        "task": task.describe(),
        "n_parameters": count_parameters(model),
        "model": OmegaConf.to_container(run_cfg.model, resolve=True),
        "layer": OmegaConf.to_container(run_cfg.layer, resolve=True),
    }
    write_record(record, Path(out), safe)
    shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    log.info("%s on %s (%d targets): %s", label, cfg.split, int(weight_sum), shown)
    log.info("written: %s", out)
    return record


def write_record(record: dict, out: Path, safe: Path | None) -> None:
    """`record` to `safe` first (when given and not `out`), then to `out`; a failure at `out` is one
    line saying where the record is."""
    if safe is None or Path(safe).resolve() == out.resolve():
        write_json_atomic(out, record)
        return
    write_json_atomic(safe, record)
    try:
        write_json_atomic(out, record)
    except UserError as exc:
        raise UserError(f"{exc}; the record is safe in {safe}") from None


# ------------------------------------------------------------------------ a model on a split


@torch.no_grad()
def evaluate_totals(
    model: ReformerLM,
    task: Task,
    *,
    split: str,
    batch_size: int,
    max_batches: int,
    device: torch.device,
    precision: str,
    seed: int,
    on_batch: Callable[[int], Any] | None = None,
    world: World = World(),
    self_weight: dict | None = None,
) -> tuple[float, float, float, int]:
    """(loss_sum, weight_sum, correct_sum, batches) of `model` on `split`. Randomness (LSH
    rotations) comes from `seed` and the batch index only, so the same call gives the same numbers.
    With several processes each takes every `world.size`-th batch and the sums are added up, so
    every process returns the same totals (`batches` counts this process's batches).

    `self_weight`: a dict to fill with the mean attention weight of a query on its own position
    (attention/self_weight.py), over heads and layers: `all` over every position, `targets` over
    the positions whose prediction is scored (weighted as the loss)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    diag = torch.zeros(4, dtype=torch.float64, device=device)  # sum all, count all, sum targets, weight
    batches = 0
    try:
        with autocast(device, precision):
            for i, batch in enumerate(task.eval_batches(split, batch_size, max_batches)):
                if i % world.size != world.rank:
                    continue
                batch = batch.to(device)
                diagnostics = None if self_weight is None else {"self_weight": []}
                totals = model.loss(batch.inputs, batch.targets, batch.weights, seed=derive_seed(seed, "eval", i),
                                    diagnostics=diagnostics)
                sums += torch.stack([totals.loss_sum, totals.weight_sum, totals.correct_sum]).double()
                if diagnostics is not None:
                    p = torch.stack(diagnostics["self_weight"]).mean(dim=0).double()  # [batch, length]
                    w = batch.weights.double()
                    diag += torch.stack([p.sum(), torch.tensor(p.numel(), dtype=torch.float64, device=device),
                                         (p * w).sum(), w.sum()])
                batches += 1
                if on_batch is not None:
                    on_batch(batches)
    finally:
        model.train(was_training)
    all_reduce_sum(sums, world)
    if self_weight is not None:
        all_reduce_sum(diag, world)
        total, count, on_targets, weight = diag.tolist()
        self_weight.update(all=total / max(count, 1.0), targets=on_targets / max(weight, 1e-30))
    loss_sum, weight_sum, correct_sum = sums.tolist()
    return loss_sum, weight_sum, correct_sum, batches


def evaluate(
    model: ReformerLM,
    task: Task,
    *,
    split: str,
    batch_size: int,
    max_batches: int,
    device: torch.device,
    precision: str,
    seed: int,
    on_batch: Callable[[int], Any] | None = None,
    world: World = World(),
) -> dict[str, float]:
    """Metrics of `model` on `split` (see `evaluate_totals`)."""
    loss_sum, weight_sum, correct_sum, _ = evaluate_totals(
        model, task, split=split, batch_size=batch_size, max_batches=max_batches, device=device,
        precision=precision, seed=seed, on_batch=on_batch, world=world,
    )
    return task.metrics(loss_sum, weight_sum, correct_sum)


def eval_seed_of(attention: Any) -> int:
    """The seed evaluation draws the attention's random numbers from (its spec's `eval_seed`:
    LSH's attention.eval_seed; 0 for an attention that draws none)."""
    return spec_of(attention).eval_seed(attention)
