"""`reformer table [--runs results/runs] [--out results] [--profile P] [--only ...] [--readme README.md]`:
rebuild the results pages and plots from the curated records (reformer_cli/table/). Offline and
fast: it reads only JSON records and the experiment definitions, and never imports torch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import OneLineParser, UserError, report_and_exit
from . import matplotlib_or_note
from ..definitions.experiments import EXPERIMENTS_DIR, PROFILES


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="reformer table",
        description="Rebuild results/<experiment>.md and its PNG plot for each result of the paper from the"
        " curated run records, beside the paper's numbers: each cell ours / paper / difference, missing where"
        " no record exists.",
    )
    p.add_argument("--runs", type=Path, default=Path("results/runs"), help="the records (default results/runs)")
    p.add_argument("--out", type=Path, default=Path("results"), help="where the pages go (default results)")
    p.add_argument("--profile", choices=PROFILES, default=None,
                   help="show this profile's records (default: per result, the most faithful profile with records:"
                        " paper, then quick, then smoke)")
    p.add_argument("--only", default=None, help="comma-separated experiments (default: all)")
    p.add_argument("--experiments", type=Path, default=EXPERIMENTS_DIR, help="the definitions (default: experiments/)")
    p.add_argument("--no-plots", action="store_true", help="markdown only")
    p.add_argument("--readme", type=Path, default=None,
                   help="also fill in the Table 2 block of this README (between its reformer table markers)")
    return p


def main(args: list[str]) -> int:
    opts = parser().parse_args(args)
    from ..definitions.experiments import load_experiments
    from ..table import build_pages, context, update_readme, write_pages

    try:
        only = [n.strip() for n in opts.only.split(",") if n.strip()] if opts.only else None
        experiments = load_experiments(opts.experiments, only)
        contexts, pages = build_pages(experiments, opts.runs, opts.profile)
        if not any(ctx.records for ctx in contexts):
            which = f"{opts.profile} records" if opts.profile else "records"
            raise UserError(
                f"no {which} in {opts.runs}: nothing to build pages from (`reformer reproduce --profile P` writes"
                " them; a smoke run's go to outputs/reproduce/smoke/results/runs: pass that with --runs)"
            )
        # the index and the README's blocks cover every experiment, also when --only rebuilds a few pages
        everything = contexts if only is None else [context(e, opts.runs, opts.profile)
                                                    for e in load_experiments(opts.experiments, None)]
        plots = not opts.no_plots and matplotlib_or_note("plots")
        written = write_pages(pages, everything, opts.out, plots=plots)
        for ctx in contexts:
            state = "no records" if ctx.profile is None else f"{ctx.profile}, {len(ctx.records)} records"
            sys.stdout.write(f"{opts.out / (ctx.experiment.name + '.md')}: {state}\n")
        if opts.readme is not None:
            table2 = next((c for c in everything if c.experiment.name == "table2"), None)
            if table2 is None:
                raise UserError(f"--readme fills in Table 2: {opts.experiments} has no table2 definition")
            changed = update_readme(opts.readme, table2, f"{opts.out}/table2.md", everything, str(opts.out))
            sys.stdout.write(f"{opts.readme}: Table 2 and verdict blocks {'updated' if changed else 'unchanged'}\n")
        sys.stdout.write(f"{len(written)} files written in {opts.out}\n")
    except UserError as exc:
        report_and_exit(str(exc))
    return 0
