"""`reformer run [overrides]`: train one configuration (a Hydra app; `-m` sweeps).

Under torchrun every process runs this command; they must share one run folder, and only rank 0
writes Hydra's files and logs (notes/ecosystem.md a.7).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import report_and_exit
from ..hydra_entry import run_hydra


def run_job(cfg: Any) -> None:
    """One Hydra job: validate the composed config (no torch yet), then train."""
    from ..config import validate

    validate(cfg)
    from ..hydra_entry import output_dir
    from ..train import train

    train(cfg, output_dir())


def torchrun_arguments(args: list[str]) -> list[str]:
    """Under torchrun (or a multi-task SLURM job): one shared run folder; quiet ranks > 0."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return args
    if any(a in ("-m", "--multirun") for a in args):
        report_and_exit("sweeps (-m) cannot run under torchrun; sweep with hydra/launcher=slurm instead")
    extra = []
    if not any(a.startswith("hydra.run.dir=") for a in args):
        run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
        if not run_id or run_id == "none":
            report_and_exit(
                "under torchrun all processes must write to one folder: pass hydra.run.dir=<folder>"
                " (or use torchrun --standalone, or --rdzv-id=<id>)"
            )
        extra.append(f"hydra.run.dir=outputs/torchrun-{run_id}")
    if int(os.environ.get("RANK", "0")) > 0:
        extra += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return [*args, *extra]


HELP = """usage: reformer run [group=option ...] [key=value ...] [-m] [--cfg job] [--hydra-help]

Train one configuration. Pick one option per config group and override any key:
  reformer run task=synthetic attention=lsh attention.n_rounds=4 trainer.max_steps=2000
Sweep with -m (each job gets its own folder and W&B run):
  reformer run -m attention.n_rounds=1,2,4 seed=0,1

config groups (group: options):
{groups}

Print the composed config (every key and its value) with `reformer run --cfg job`, one group with
`reformer run --cfg job -p trainer`. Continue an interrupted run with the same command plus
resume=auto. Hydra's own options: `reformer run --hydra-help`.
"""


def print_help() -> None:
    import sys

    from ..hydra_entry import group_listing

    sys.stdout.write(HELP.format(groups=group_listing()))


def main(args: list[str]) -> int:
    from ..resume import resolve_resume_dir

    if "--help" in args or "-h" in args:
        print_help()
        return 0

    run_hydra(run_job, "config", torchrun_arguments(resolve_resume_dir(args)), prog="reformer run")
    return 0
