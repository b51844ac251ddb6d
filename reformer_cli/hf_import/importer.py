"""A saved transformers Reformer as a run folder: config.yaml and checkpoints/step-0.pt, written as
`reformer run` writes them, so that `reformer eval`, `resume` and every reader of run folders take it.

The config is composed from the overrides `hf_config.model_overrides` gives (plus the user's: the
task and anything else), validated as `reformer run` validates it; the weights are mapped
(`weights.map_weights`) onto a model built from that config, which must take every one of them.
The checkpoint is at step 0 (no step of this project trained it) with a fresh optimizer state;
import.json beside config.yaml records the source, its config.json and the overrides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .. import run_folder
from ..errors import UserError
from .hf_config import check_expressible, model_overrides, notes, read_config, setting, training_length


@dataclass
class Imported:
    folder: Path  # the run folder written
    overrides: list[str]  # `reformer run` overrides of this config (resume: the same plus resume=<folder>)
    notes: list[str]  # what was not carried over exactly, and the token map
    n_parameters: int


def _given(overrides: list[str], key: str) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in overrides)


def run_overrides(hf: dict, user: list[str]) -> list[str]:
    """The overrides of the imported run: the model's, then the task's defaults that follow from the
    model (sequence length; the vocabulary, for a task whose config sets it), then the user's."""
    from ..hydra_entry import compose

    task = compose("config", list(user)).task
    seq_len = int(task.seq_len) if _given(user, "task.seq_len") else training_length(hf)
    derived = [f"task.seq_len={seq_len}"]
    if "vocab_size" in task and not _given(user, "task.vocab_size"):
        derived.append(f"task.vocab_size={int(setting(hf, 'vocab_size'))}")
    return [*model_overrides(hf, seq_len), *derived, *user]


def default_folder(task_name: str, source: Path) -> Path:
    """outputs/<task>/<date>_<time>_hf-<source folder's name>: where `reformer run` puts a run, so
    that `resume=auto` finds it."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return Path("outputs") / task_name / f"{stamp}_hf-{run_folder.folder_label(source.resolve().name)}"


def import_hf(source: Path, user_overrides: list[str], out: Path | None = None) -> Imported:
    """Import the transformers model saved in `source` into a new run folder (`out`, or
    `default_folder`). UserError (one line) for anything that cannot be imported exactly."""
    import torch
    from omegaconf import OmegaConf

    from ..config import validate
    from ..hydra_entry import compose
    from ..model.reformer import build_model, count_parameters
    from ..optimization import build_optimizer
    from ..checkpointer import TrainState, checkpoint_contents, save_checkpoint
    from ..records import write_text_atomic
    from ..tasks import build_task, task_spec
    from .weights import map_weights, read_weights, token_rows

    source = Path(source)
    hf = read_config(source)
    check_expressible(hf)
    overrides = run_overrides(hf, user_overrides)
    cfg = compose("config", overrides)
    validate(cfg)
    task = build_task(cfg.task, int(cfg.seed))
    vocab, length = task.vocab_size, task.seq_len
    rows, token_note = token_rows(int(setting(hf, "vocab_size")), vocab, task_spec(str(cfg.task.name)).byte_tokens)
    if "run_name" not in {o.split("=", 1)[0] for o in user_overrides}:
        overrides.append(f"run_name=hf-{run_folder.folder_label(source.resolve().name)}")
        cfg = compose("config", overrides)

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(cfg, vocab, length).state_dict().items()}
    state = map_weights(read_weights(source), expected, int(cfg.model.n_layers), rows, int(cfg.task.seq_len))
    model = build_model(cfg, vocab, length)
    model.load_state_dict(state)
    optimizer = build_optimizer(cfg.trainer, model)

    if out is None:
        folder, _ = run_folder.claim_unique(default_folder(str(cfg.task.name), source))
    else:
        folder = Path(out)
        if run_folder.holds_records(folder):
            raise UserError(f"{folder} already holds a run's records; choose another folder with --out")
    config = OmegaConf.to_container(cfg, resolve=True)
    lines = [*notes(hf), *([token_note] if token_note else [])]
    with run_folder.hold(folder):
        record = {"source": str(source.resolve()), "hf_config": hf, "overrides": overrides, "notes": lines}
        write_text_atomic(folder / "import.json", json.dumps(record, indent=2) + "\n")
        write_text_atomic(folder / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        contents = checkpoint_contents(model, optimizer, TrainState(), [0.0, 0.0, 0.0], config)
        save_checkpoint(folder, 0, contents, int(cfg.trainer.keep_last))
    return Imported(folder, overrides, lines, count_parameters(model))
