"""`reformer run [overrides]`: train one configuration (a Hydra app; `-m` sweeps)."""

from __future__ import annotations

from typing import Any

from ..hydra_entry import run_hydra


def run_job(cfg: Any) -> None:
    """One Hydra job: validate the composed config (no torch yet), then train."""
    from ..config import validate

    validate(cfg)
    from ..hydra_entry import output_dir
    from ..train import train

    train(cfg, output_dir())


def main(args: list[str]) -> int:
    from ..resume import resolve_resume_dir

    run_hydra(run_job, "config", resolve_resume_dir(args), prog="reformer run")
    return 0
