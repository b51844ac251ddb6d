"""`reformer eval checkpoint=PATH [overrides]`: evaluate a trained model, optionally under another
attention, as the paper's Table 2 does (a Hydra app; `-m` sweeps, e.g. over `attention.n_rounds`).
The work is `evaluation.evaluate_checkpoint`; this module parses, calls and exits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import EvalConfig, validate_eval
from ..errors import UserError, report_and_exit
from ..eval_arguments import EvalArguments
from ..hydra_entry import run_hydra
from ..prepared_run import PreparedRun

HELP = """usage: reformer eval checkpoint=PATH [attention=... attention.KEY=VALUE ...] [split=valid|test]
                     [max_batches=N] [batch_size=N] [device=...] [output=PATH] [-m]

Evaluate a trained checkpoint (a step-N.pt file or a run folder: its newest checkpoint), with the
attention it was trained with or another one, as the paper's Table 2 does:
  reformer eval checkpoint=outputs/synthetic/RUN attention.n_rounds=8
  reformer eval checkpoint=outputs/synthetic/RUN attention=full
  reformer eval -m checkpoint=outputs/synthetic/RUN attention=lsh attention.n_rounds=1,2,4,8

attention options:
{groups}

`attention.KEY=VALUE` alone changes only those keys of the trained attention; `attention=NAME`
starts from that option's defaults. LSH rotations come from attention.eval_seed: the same seed gives
the same numbers. The record goes to outputs/eval/<date>_<time>/eval.json, or to output=PATH.
With -m, each job's record goes to its own folder, and sweep.json (every record) and sweep.md (a
table of trained x evaluated attention, as Table 2) to the sweep folder.
"""


def eval_job(cfg: EvalConfig, arguments: EvalArguments) -> dict:
    """One Hydra job (of the command line `arguments`): load, swap the attention, evaluate, write
    the record."""
    validate_eval(cfg)
    from ..evaluation import evaluate_checkpoint
    from ..hydra_entry import output_dir

    own = output_dir() / "eval.json"  # the eval's own folder: the record is written there first
    out = Path(cfg.output) if cfg.output else own
    return evaluate_checkpoint(cfg, arguments.explicit, out, safe=own)


def main(args: list[str]) -> int:
    from ..hydra_entry import group_listing

    if "--help" in args or "-h" in args:
        sys.stdout.write(HELP.format(groups=group_listing(("attention",))))
        return 0

    from ..sweeps import exit_code, note_sweep

    try:
        arguments = EvalArguments.parse(args).with_trained_attention()
    except UserError as exc:
        report_and_exit(str(exc))

    def job(cfg: EvalConfig) -> dict:
        return eval_job(cfg, arguments)

    job.__name__ = eval_job.__name__
    note_sweep(list(arguments.args))
    try:
        prepared = PreparedRun.prepare(list(arguments.args), "eval", check=validate_eval)
    except UserError as exc:
        report_and_exit(str(exc), exc.exit_code)
    run_hydra(job, "eval", prepared.arguments, prog="reformer eval", held=prepared.held)
    return exit_code()
