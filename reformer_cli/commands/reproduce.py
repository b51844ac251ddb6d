"""`reformer reproduce --profile smoke|quick|paper [--only table2,fig3]`: run the experiments of
`experiments/` at one profile, resumably, and curate their records into `results/runs/`
(reformer_cli/reproduce/). `make reproduce-table PROFILE=...` runs this, then `reformer table`.
"""

from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path

from ..errors import OneLineParser, UserError, report_and_exit
from ..definitions.experiments import EXPERIMENTS_DIR, PROFILES


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="reformer reproduce",
        description="Run the paper's experiments (experiments/*.yaml) at one profile: smoke (CPU, minutes; what"
        " CI runs), quick (one H100, up to ~30 minutes per result), paper (the paper's sizes and steps)."
        " Each step runs in a fixed folder and resumes where it stopped; finished steps are not rerun.",
        epilog="Exit codes: 0 all ran; 1 a step failed; 2 usage error; 3 steps skipped (missing data, device or"
        " command); 4 stopped by --time-limit (run again to continue).",
    )
    p.add_argument("--profile", required=True, choices=PROFILES)
    p.add_argument("--only", default=None, help="comma-separated experiments (default: all), e.g. table2,fig3")
    p.add_argument("--list", action="store_true", help="list the experiments and their steps at this profile, run nothing")
    p.add_argument("--outputs", type=Path, default=Path("outputs/reproduce"),
                   help="run folders go to <outputs>/<profile>/<experiment>/<step> (default outputs/reproduce)")
    p.add_argument("--results", type=Path, default=None,
                   help="records go to <results>/runs/<profile>/<experiment>/<step>.json (default: results; for the"
                        " smoke profile a scratch folder, <outputs>/smoke/results, so a pipeline check never rewrites"
                        " committed records)")
    p.add_argument("--experiments", type=Path, default=EXPERIMENTS_DIR, help="the definitions (default: experiments/)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop cleanly after this long (a training run saves a checkpoint); rerun to continue")
    p.add_argument("--pack", type=Path, default=None, metavar="FILE.tar.gz",
                   help="at the end (also when stopped), write this profile's records and the folders of unfinished"
                        " training runs (newest checkpoint only) into one archive: `tar xzf` it in the same folder on"
                        " another machine and run the same command to continue there")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run up to N training runs (each with its evaluations) at once, e.g. one per CPU core for the"
                        " one-thread cpu profile (default 1); benchmarks always run alone. Runs that share the"
                        " machine take longer each: their records' times say so")
    p.add_argument("-v", "--verbose", action="store_true", help="show each step's own output")
    return p


def list_steps(runner, folder: Path) -> None:
    """Each experiment's steps at the runner's profile, each with the command the runner runs
    (`StepRun.command`: an evaluation's checkpoint= its training folder, the run folder, ...)."""
    experiments, profile = runner.experiments, runner.profile
    print(f"definitions (<experiments> in their arguments): {folder.resolve()}")
    for e in experiments:
        p = e.profile(profile)
        if p is None:
            print(f"{e.name}: no '{profile}' profile")
            continue
        print(f"{e.name}: {e.title}")
        print(f"  {profile}: {p.about} ({p.estimate})")
        for step in p.steps:
            print(f"    {step.name:24s} reformer {shlex.join(runner.job(step).command())}")


def results_folder(opts: argparse.Namespace) -> Path:
    """Where the records go: --results, else results/, except for smoke: a scratch folder beside its
    run folders (its numbers check the pipeline; they are not results)."""
    if opts.results is not None:
        return opts.results
    return opts.outputs / "smoke" / "results" if opts.profile == "smoke" else Path("results")


def main(args: list[str]) -> int:
    opts = parser().parse_args(args)
    from ..definitions.experiments import load_experiments
    from ..reproduce.runner import Reproduction

    try:
        only = [n.strip() for n in opts.only.split(",") if n.strip()] if opts.only else None
        experiments = load_experiments(opts.experiments, only)
        if opts.time_limit is not None and not opts.list and not (math.isfinite(opts.time_limit) and opts.time_limit > 0):
            raise UserError(f"--time-limit {opts.time_limit} must be a positive number of seconds")
        if opts.jobs < 1:
            raise UserError(f"--jobs {opts.jobs} must be at least 1")
        if opts.pack is not None and not opts.list:
            from ..reproduce.pack import check_path

            check_path(opts.pack)
        runner = Reproduction(
            profile=opts.profile, experiments=experiments, outputs=opts.outputs, results=results_folder(opts),
            experiments_dir=opts.experiments, time_limit=opts.time_limit, pack=opts.pack, verbose=opts.verbose,
            jobs=opts.jobs,
        )
        if opts.list:
            list_steps(runner, opts.experiments)
            return 0
        return runner.run()
    except UserError as exc:
        report_and_exit(str(exc))
    return 2
