"""What every results page shares: the provenance header, number formatting, the cell
`ours / paper / difference`, markdown tables. Pure text from records: no torch, no clock, so the
same records always give the same bytes (the golden test checks exactly that)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..definitions.curated import evaluated_before_training
from ..text import markdown_table

MISSING = "missing"


def not_comparable(profile: str) -> str:
    return f"**{profile} profile: not comparable to the paper.**"


@dataclass
class Page:
    """One results page: its markdown and the plots it refers to (name -> draw function)."""

    name: str
    markdown: str
    plots: dict[str, Callable[[Path], None]] = field(default_factory=dict)


@dataclass
class Context:
    """An experiment at the profile its page shows, with that profile's records."""

    experiment: Any  # experiments.Experiment
    profile: str | None  # None: no records at any profile
    records: dict[str, dict]  # step name -> curated record
    runs_shown: str  # the records folder as shown on the page, e.g. results/runs

    @property
    def spec(self) -> Any:
        return self.experiment.profile(self.profile) if self.profile else None

    @property
    def comparable(self) -> bool:
        return bool(self.spec and self.spec.comparable)

    def record(self, name: str) -> dict | None:
        return self.records.get(name)


# ------------------------------------------------------------------------------------ numbers


def fmt(value: float | None, digits: int = 1) -> str:
    """A number as the tables print it; '-0.0' never appears."""
    if value is None:
        return MISSING
    text = f"{value:.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def fmt_signed(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    text = fmt(value, digits)
    return text if text.startswith("-") or text.strip("0.") == "" else "+" + text


def fmt_paper(value: float | None) -> str:
    """The paper's number exactly as printed (100, 94.8)."""
    if value is None:
        return "-"
    return f"{value:g}"


def cell(ours: float | None, paper: float | None, digits: int = 1, as_printed: bool = True) -> str:
    """`ours / paper / difference` (ours - paper); `missing / paper / -` without a record.
    The paper's number as printed (`as_printed`), or with `digits` like ours (a derived ratio)."""
    shown = fmt_paper(paper) if as_printed or paper is None else fmt(paper, digits)
    if ours is None:
        return f"{MISSING} / {shown} / -"
    if paper is None:
        return f"{fmt(ours, digits)} / - / -"
    return f"{fmt(ours, digits)} / {shown} / {fmt_signed(ours - paper, digits)}"


def _escape(text: str) -> str:
    """A table cell: a `|` in the text must not end the cell."""
    return re.sub(r"(?<!\\)\|", r"\\|", str(text))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return markdown_table(header, rows, _escape)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


# ------------------------------------------------------------------------------------ header


def _day(date: Any) -> str | None:
    match = re.match(r"(\d{4}-\d{2}-\d{2})", str(date or ""))
    return match.group(1) if match else None


def _code(version: Any) -> str | None:
    if not isinstance(version, dict):
        return None
    sha = (version.get("git_sha") or "")[:7] or "unknown commit"
    dirty = " (modified tree)" if version.get("git_dirty") else ""
    return f"reformer {version.get('package', '?')}, git {sha}{dirty}"


def provenance(ctx: Context) -> dict[str, str]:
    devices = sorted({str(r.get("device")) for r in ctx.records.values() if r.get("device")})
    days = sorted({d for d in (_day(r.get("date")) for r in ctx.records.values()) if d})
    codes = sorted({c for c in (_code(r.get("code_version")) for r in ctx.records.values()) if c})
    if not days:
        dates = "-"
    elif len(days) == 1:
        dates = days[0]
    else:
        dates = f"{days[0]} to {days[-1]}"
    return {"devices": ", ".join(devices) or "-", "dates": dates, "code": "; ".join(codes) or "-"}


def training_time(records: dict[str, dict]) -> tuple[float, int, int]:
    """(seconds, runs, copies): the sum of the wall times of the training records, each run
    counted where it was trained; `copies` records copied from another result (`copied_from`)
    are not counted again. A record without a wall time adds nothing."""
    seconds, runs, copies = 0.0, 0, 0
    for r in records.values():
        if r.get("kind") != "train":
            continue
        if r.get("copied_from"):
            copies += 1
            continue
        wall = r.get("wall_seconds")
        if isinstance(wall, (int, float)) and wall >= 0:
            seconds += wall
            runs += 1
    return seconds, runs, copies


def training_time_text(records: dict[str, dict]) -> str | None:
    """The header's `training time`: what the records measured, or None without training runs."""
    seconds, runs, copies = training_time(records)
    if not runs:
        return None
    text = (f"{duration(seconds)}: the sum of the wall times of its {runs} training run{'s' if runs != 1 else ''}"
            " (evaluations not included; a run that shared the machine with others took longer than it would alone)")
    if copies:
        text += f"; {copies} run{'s' if copies != 1 else ''} copied from another result, counted there"
    return text


def expected_records(ctx: Context) -> int:
    return sum(1 for s in ctx.spec.steps if s.kind != "prepare") if ctx.spec else 0


def header(ctx: Context, intro: str | None = None) -> list[str]:
    e = ctx.experiment
    lines = [f"# {e.title}", ""]
    if ctx.profile is None:
        lines += [
            "No records yet: nothing has been run for this result. Run"
            f" `make reproduce-table PROFILE=quick` (or `reformer reproduce --profile quick --only {e.name}`).",
            "",
        ]
    elif ctx.spec.label:
        lines += [f"> **{ctx.spec.label}**", ""]
    elif not ctx.comparable:
        lines += [f"> {not_comparable(ctx.profile)} Its runs are far smaller than the paper's (see `profile`"
                  " below): they check that the pipeline runs end to end, not that the paper reproduces.", ""]
    stale = stale_records(ctx)
    if stale:
        runs = sorted({n.split("__")[0] for n in stale})
        lines += [f"> **Some records were made by an earlier definition of their step** and are shown until the"
                  f" step runs again (`reformer reproduce --profile {ctx.profile} --only {e.name}`): the training"
                  f" runs {', '.join(f'`{n}`' for n in runs)} and their evaluations ({len(stale)} records).", ""]
    if intro:
        lines += [intro, ""]
    rows = []
    if ctx.profile is not None:
        p = provenance(ctx)
        folder = f"{ctx.runs_shown}/{ctx.profile}/{e.name}/"
        rows += [
            ["profile", f"`{ctx.profile}`: {ctx.spec.about}"],
            ["records", f"`{folder}` ({len(ctx.records)} of {expected_records(ctx)})"],
            ["device", p["devices"]],
            ["date", p["dates"]],
            ["code", p["code"]],
            *([["training time", time]] if (time := training_time_text(ctx.records)) else []),
            ["reproduce", f"`make reproduce-table PROFILE={ctx.profile}`, or this result alone:"
                          f" `reformer reproduce --profile {ctx.profile} --only {e.name}` then `reformer table`"],
        ]
    rows.append(["paper", str(e.paper.get("source", "-"))])
    lines += table(["", ""], rows)
    lines.append("")
    return lines


def stale_records(ctx: Context) -> list[str]:
    """The records whose step the profile now defines differently (a train step's overrides
    changed since it ran; an evaluation of such a training run, or of a later one made again):
    the page still shows them, and says so. Records of steps the profile no longer has are not
    listed here."""
    if ctx.spec is None:
        return []
    steps = {s.name: s for s in ctx.spec.steps}
    stale_train = {name for name, r in ctx.records.items()
                   if name in steps and r.get("kind") == "train" and r.get("definition") != steps[name].args}
    out = []
    for name, r in ctx.records.items():
        step = steps.get(name)
        if step is None or r.get("definition") is None:
            continue
        trained = ctx.records.get(step.evaluates or "") if step.kind == "eval" else None
        if (name in stale_train or r.get("definition") != step.args
                or (step.kind == "eval" and (step.evaluates in stale_train or (
                    trained is not None and evaluated_before_training(r, trained))))):
            out.append(name)
    return sorted(out)


def recipe(ctx: Context) -> list[str]:
    if not ctx.spec or not ctx.spec.recipe:
        return []
    return ["## How it was trained, and why", "", ctx.spec.recipe, ""]


def records_by_run(ctx: Context, kind: str = "train") -> dict[str, dict]:
    return {name: r for name, r in ctx.records.items() if r.get("kind") == kind}
