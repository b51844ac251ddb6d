"""`resume=auto` across invocations: find the run folder an interrupted run left behind.

Hydra gives every invocation a new timestamped folder. So that re-running the same command with
`resume=auto` continues where the interrupted run stopped, `reformer run` looks, before Hydra
starts, for the newest folder under `outputs/<task>/` whose config.yaml equals this config
(ignoring `resume`) and that holds a checkpoint (`find_previous_run`), and points `hydra.run.dir`
at it (hydra_entry.resume_arguments). Multirun sweeps resume per job inside a fixed
`hydra.sweep.dir`.
"""

from __future__ import annotations

from pathlib import Path

from .records import list_checkpoints

OUTPUTS = Path("outputs")


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "resume"}


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
