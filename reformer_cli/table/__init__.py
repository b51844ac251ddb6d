"""`reformer table`: the results pages (`results/<experiment>.md` + PNG plots) from the curated
records in `results/runs/` and the paper's numbers in `experiments/*.yaml`. It reads nothing
else (no checkpoints, no run folders), imports no torch, and the same records always give the
same markdown, byte for byte.

Which records a page shows: `--profile` if given; otherwise, per experiment, the most faithful
profile that has records (paper, then quick, then cpu, then smoke). Every page says which profile, device,
date and code its records come from and the command that reproduces them; a smoke page says it
is not comparable to the paper; a cell without a record says `missing`.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Callable

from ..definitions.curated import read_records
from ..definitions.experiments import Experiment
from ..errors import UserError
from ..records import write_text_atomic
from ..text import shown_path
from . import curves, matrix, memory, speed
from .common import Context, Page, duration, provenance, table, training_time

PREFERENCE = ("paper", "quick", "cpu", "smoke")
README_BEGIN = "<!-- reformer table: table2 begin -->"
README_END = "<!-- reformer table: table2 end -->"
# optional: the claims and their verdicts, one line per check of every curves page
VERDICTS_BEGIN = "<!-- reformer table: verdicts begin -->"
VERDICTS_END = "<!-- reformer table: verdicts end -->"


def builder(layout: str) -> Callable[[Context], Page]:
    """The page builder of a layout: `build` of the module of this package named like it (the
    layouts are listed once, in definitions.experiments.LAYOUTS)."""
    return import_module(f"{__name__}.{layout}").build


def context(experiment: Experiment, runs: Path, profile: str | None) -> Context:
    if profile is not None:
        records = read_records(runs, profile, experiment.name) if experiment.profile(profile) else {}
        return Context(experiment, profile if experiment.profile(profile) else None, records, shown_path(runs))
    for p in PREFERENCE:
        records = read_records(runs, p, experiment.name)
        if records and experiment.profile(p):
            return Context(experiment, p, records, shown_path(runs))
    return Context(experiment, None, {}, shown_path(runs))


def index(contexts: list[Context]) -> str:
    lines = [
        "# Results",
        "",
        "Built by `reformer table` from the records in `runs/`; each page says which profile, device and date"
        " its numbers come from and how to reproduce them. Rebuild with `make reproduce-table PROFILE=...`"
        " (runs the experiments first) or `reformer table` (records only).",
        "",
    ]
    body = []
    total, total_runs = 0.0, 0
    for ctx in contexts:
        e = ctx.experiment
        if ctx.profile is None:
            body.append([f"[{e.title}]({e.name}.md)", "-", "none yet", "-", "-", "-"])
            continue
        p = provenance(ctx)
        profile = ctx.profile + ("" if ctx.comparable else " (not comparable to the paper)")
        seconds, runs, _ = training_time(ctx.records)
        total, total_runs = total + seconds, total_runs + runs
        body.append([f"[{e.title}]({e.name}.md)", profile, str(len(ctx.records)), p["devices"], p["dates"],
                     duration(seconds) if runs else "-"])
    lines += table(["result", "profile", "records", "device", "date", "training time"], body)
    if total_runs:
        lines += ["", f"Training time of the records shown: {duration(total)}, the sum of the wall times of"
                      f" {total_runs} training runs, each counted once (a run another result copied is counted"
                      " where it was trained; evaluations and benchmarks not included; runs that shared the"
                      " machine took longer than they would alone)."]
    return "\n".join(lines) + "\n"


def replace_block(text: str, begin: str, end: str, body: str) -> str:
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    return f"{before}{begin}\n{body}\n{end}{after}"


def verdicts_block(contexts: list[Context], out: str) -> str:
    """The README's table of claims: each check of every curves page with its verdict, the
    measured difference and the page, so that the README says 'holds' only where a page does."""
    body = []
    for ctx in contexts:
        link = f"[{ctx.experiment.name}]({out}/{ctx.experiment.name}.md)"
        if ctx.experiment.layout in ("memory", "speed"):  # one claim each, decided on its page
            rows = (memory if ctx.experiment.layout == "memory" else speed).claim_rows(ctx)
            body += [[claim, link, ctx.profile or "-", measured, seeds, f"**{verdict}**"]
                     for claim, measured, seeds, verdict in rows]
            continue
        if ctx.experiment.layout != "curves":
            continue
        for v in curves.verdicts(ctx):
            unit = curves.METRIC_UNITS.get(v.metric, v.metric)
            if v.difference is None:
                measured = "-"
            else:
                measured = f"{v.difference:+.3f} {unit}" + (f" ± {v.spread:.3f}" if v.seeds > 1 else "")
            seeds = f"{v.seeds} seed{'s' if v.seeds != 1 else ''}" if v.seeds else "-"
            body.append([v.claim, f"[{ctx.experiment.name}]({out}/{ctx.experiment.name}.md)", ctx.profile or "-",
                         f"{v.run} − {v.baseline}: {measured}", seeds, f"**{v.verdict}**"])
    if not body:
        return "No claim has records yet."
    return "\n".join(table(["claim", "page", "profile", "measured", "seeds", "verdict"], body))


def update_readme(readme: Path, ctx: Context, page: str, contexts: list[Context] | None = None,
                  out: str = "results") -> bool:
    """Replace the Table 2 block of the README, and its verdicts block when it has one (built from
    `contexts`); True if it changed."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise UserError(f"{readme} has no '{README_BEGIN}' ... '{README_END}' block to fill in")
    new = replace_block(text, README_BEGIN, README_END, matrix.readme_block(ctx, page))
    if contexts is not None and VERDICTS_BEGIN in new and VERDICTS_END in new:
        new = replace_block(new, VERDICTS_BEGIN, VERDICTS_END, verdicts_block(contexts, out))
    if new != text:
        write_text_atomic(readme, new)
    return new != text


def experiment_verdicts(experiment: Experiment, runs: Path, profile: str | None = None) -> list[dict]:
    """The verdicts of one experiment's checks as data (claim, verdict, difference, spread, seeds,
    page, run, baseline, expect, tolerance, metric, task), from the records its page would show;
    [] for an experiment without checks."""
    if experiment.layout != "curves":
        return []
    return curves.verdicts_as_data(context(experiment, runs, profile))


def build_pages(experiments: list[Experiment], runs: Path, profile: str | None = None) -> tuple[list[Context], list[Page]]:
    contexts = [context(e, runs, profile) for e in experiments]
    return contexts, [builder(ctx.experiment.layout)(ctx) for ctx in contexts]


def write_pages(pages: list[Page], contexts: list[Context], out: Path, plots: bool = True) -> list[Path]:
    """Write every page, the index and (with matplotlib) the plots; returns the files written."""
    written = []
    for page in pages:
        path = Path(out) / f"{page.name}.md"
        write_text_atomic(path, page.markdown)
        written.append(path)
    path = Path(out) / "README.md"
    write_text_atomic(path, index(contexts))
    written.append(path)
    if plots:
        for page in pages:
            for name, draw in page.plots.items():
                draw(Path(out) / name)
                written.append(Path(out) / name)
    return written
