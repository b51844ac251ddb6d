"""`reformer run [overrides]`: train one configuration (a Hydra app; `-m` sweeps). The work is
`train.train`; this module parses, calls and exits.

Under torchrun every process runs this command; they must share one run folder, and only rank 0
writes Hydra's files and logs (hydra_entry.torchrun_arguments).
"""

from __future__ import annotations

import sys

from ..config import RunConfig, check_removed_groups, validate
from ..errors import UserError, report_and_exit
from ..hydra_entry import resume_arguments, run_hydra, torchrun_arguments


def run_job(cfg: RunConfig) -> dict:
    """One Hydra job: validate the composed config (no torch yet), then train; returns the summary."""
    validate(cfg)
    from ..hydra_entry import output_dir
    from ..memory_estimate import available_memory, check_fits

    check_fits(cfg, available_memory(str(cfg.trainer.device)))
    from ..sweeps import run_identity
    from ..train import train

    return train(cfg, output_dir(), run_identity())


HELP = """usage: reformer run [group=option ...] [key=value ...] [-m] [--cfg job] [--hydra-help]

Train one configuration. Pick one option per config group and override any key; the default
attention is the paper's LSH (`attention=full` is the baseline):
  reformer run task=synthetic attention.n_rounds=4 trainer.max_steps=2000
Sweep with -m: each job gets its own folder and W&B run, named by its overrides (n_rounds=2,seed=1)
and grouped by the sweep; every job runs even if one fails; at the end a table of the jobs and
their results is printed and written to sweep.md and sweep.json in the sweep folder:
  reformer run -m attention.n_rounds=1,2,4 seed=0,1

config groups (group: options):
{groups}

Print the composed config (every key and its value) with `reformer run --cfg job`, one group with
`reformer run --cfg job -p trainer`. Continue an interrupted run with the same command plus
resume=auto. Hydra's own options: `reformer run --hydra-help`.
"""


def print_help() -> None:
    from ..hydra_entry import group_listing

    sys.stdout.write(HELP.format(groups=group_listing()))


def main(args: list[str]) -> int:
    if "--help" in args or "-h" in args:
        print_help()
        return 0

    from ..sweeps import exit_code, note_sweep

    try:
        check_removed_groups(args)
        args = torchrun_arguments(resume_arguments(args))
    except UserError as exc:
        report_and_exit(str(exc), exc.exit_code)
    note_sweep(args)
    run_hydra(run_job, "config", args, prog="reformer run", check=validate)
    return exit_code()
