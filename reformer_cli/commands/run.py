"""`reformer run [overrides]`: train one configuration (a Hydra app; `-m` sweeps). The run is
prepared once before Hydra starts (prepared_run.py: its config, folder, lock and `resume=`
choice); the work is `train.train`; this module parses, calls and exits.

Under torchrun every process runs this command; they must share one run folder, and only rank 0
writes Hydra's files and logs (distributed.torchrun_arguments).
"""

from __future__ import annotations

import sys
from typing import Any

from ..config import check_removed_groups, validate
from ..errors import UserError, report_and_exit
from ..hydra_entry import run_hydra
from ..prepared_run import PreparedRun


def run_job(run: PreparedRun) -> dict:
    """One Hydra job: its config checked (no torch yet; a run prepared before Hydra already is),
    then trained; returns the summary."""
    if not run.validated:
        validate(run.config)
    from ..memory_estimate import check_run_fits

    warning = check_run_fits(run.config)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    from ..sweeps import run_identity
    from ..train import train

    return train(run.config, run.folder, identity=run_identity())


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
        prepared = PreparedRun.prepare(args, "config", check=validate)
    except UserError as exc:
        report_and_exit(str(exc), exc.exit_code)

    def job(cfg: Any) -> dict:
        return run_job(prepared.job(cfg))

    job.__name__ = run_job.__name__
    note_sweep(prepared.arguments)
    run_hydra(job, "config", prepared.arguments, prog="reformer run", held=prepared.held)
    return exit_code()
