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

from pathlib import Path

from ..reproduce.curate import read_records
from ..errors import UserError
from ..reproduce.experiments import Experiment
from . import curves, matrix, memory, speed
from .common import Context, Page, provenance, table

BUILDERS = {"matrix": matrix.build, "curves": curves.build, "speed": speed.build, "memory": memory.build}
PREFERENCE = ("paper", "quick", "cpu", "smoke")
README_BEGIN = "<!-- reformer table: table2 begin -->"
README_END = "<!-- reformer table: table2 end -->"


def shown(path: Path) -> str:
    """A folder as the pages show it: relative to the working folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def context(experiment: Experiment, runs: Path, profile: str | None) -> Context:
    if profile is not None:
        records = read_records(runs, profile, experiment.name) if experiment.profile(profile) else {}
        return Context(experiment, profile if experiment.profile(profile) else None, records, shown(runs))
    for p in PREFERENCE:
        records = read_records(runs, p, experiment.name)
        if records and experiment.profile(p):
            return Context(experiment, p, records, shown(runs))
    return Context(experiment, None, {}, shown(runs))


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
    for ctx in contexts:
        e = ctx.experiment
        if ctx.profile is None:
            body.append([f"[{e.title}]({e.name}.md)", "-", "none yet", "-", "-"])
            continue
        p = provenance(ctx)
        profile = ctx.profile + ("" if ctx.comparable else " (not comparable to the paper)")
        body.append([f"[{e.title}]({e.name}.md)", profile, str(len(ctx.records)), p["devices"], p["dates"]])
    lines += table(["result", "profile", "records", "device", "date"], body)
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, ctx: Context, page: str) -> bool:
    """Replace the Table 2 block of the README; True if it changed."""
    from ..records import write_text_atomic

    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise UserError(f"{readme} has no '{README_BEGIN}' ... '{README_END}' block to fill in")
    before, rest = text.split(README_BEGIN, 1)
    _, after = rest.split(README_END, 1)
    new = f"{before}{README_BEGIN}\n{matrix.readme_block(ctx, page)}\n{README_END}{after}"
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
    return contexts, [BUILDERS[ctx.experiment.layout](ctx) for ctx in contexts]


def write_pages(pages: list[Page], contexts: list[Context], out: Path, plots: bool = True) -> list[Path]:
    """Write every page, the index and (with matplotlib) the plots; returns the files written."""
    from ..records import write_text_atomic

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
