"""`resume=auto` across invocations: find the run folder an interrupted run left behind.

Hydra gives every invocation a new timestamped folder. So that re-running the same command with
`resume=auto` continues where the interrupted run stopped, `reformer run` looks, before Hydra
starts, for the newest folder under `outputs/<task>/` whose config.yaml equals this config
(ignoring `resume`) and that holds a checkpoint, and points `hydra.run.dir` at it.
`resume=<run folder>` continues that folder the same way. Multirun sweeps resume per job inside a
fixed `hydra.sweep.dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .records import list_checkpoints

OUTPUTS = Path("outputs")


def _value(args: list[str], key: str) -> str | None:
    for arg in args:
        if arg.startswith(f"{key}="):
            return arg.split("=", 1)[1]
    return None


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "resume"}


def _compose(args: list[str]) -> Any | None:
    """The config these overrides compose to, or None if they do not compose (Hydra reports)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from .config import register_schemas
    from .hydra_entry import CONF_DIR

    register_schemas()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return OmegaConf.to_container(compose(config_name="config", overrides=args), resolve=True)
    except Exception:
        return None


def find_previous_run(cfg: dict, root: Path = OUTPUTS) -> Path | None:
    """Newest folder under root/<task>/ with the same config and at least one checkpoint."""
    from omegaconf import OmegaConf

    folder = root / str(cfg["task"]["name"])
    if not folder.is_dir():
        return None
    wanted = _comparable(cfg)
    for run_dir in sorted((p for p in folder.iterdir() if p.is_dir()), reverse=True):
        saved = run_dir / "config.yaml"
        if not saved.is_file() or not list_checkpoints(run_dir):
            continue
        try:
            previous = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
        except Exception:
            continue
        if _comparable(previous) == wanted:
            return run_dir
    return None


def resolve_resume_dir(args: list[str]) -> list[str]:
    """Return Hydra's arguments, with `hydra.run.dir` pointed at the run to continue if any."""
    resume = _value(args, "resume")
    flags = [a for a in args if a.startswith("-")]
    if resume in (None, "null") or flags or _value(args, "hydra.run.dir") is not None:
        return args
    if resume != "auto":
        target = Path(resume)
        return [*args, f"hydra.run.dir={target}"] if target.is_dir() else args
    cfg = _compose(args)
    previous = find_previous_run(cfg) if cfg is not None else None
    return [*args, f"hydra.run.dir={previous}"] if previous is not None else args
