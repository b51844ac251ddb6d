"""Figures 3, 4 and 5 (left): learning curves the paper shows without numbers. The page gives
each run's final held-out number, its difference to the panel's baseline run and the paper's
words; the plot redraws the curves from the validation points stored in the records. Numbers the
paper does state (`paper.values`) get their own `ours / paper / difference` table.

With several seeds (a profile's `seeds`: records `<run>@s<seed>`), a panel's run `regular` means
all its seed records: the table gives the mean over seeds ± half their range, the difference to
the baseline paired by seed, and the plot every seed's curve. A panel's `checks` are decided from
the same numbers and from the paired difference curve over the last quarter of training (is the
difference stable? reformer_cli/table/verdicts.py): one line under the panel's table, and a
`## Verdicts` section at the top of the page."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..attention.registry import hashes
from .common import Context, Page, cell, fmt, fmt_signed, header, recipe, table
from .plots import legend_outside, mark_empty, new_figure, save, style, title
from .verdicts import MISSING, Verdict, last_quarter_movement, mean, paired_differences, spread, verdict

METRIC_LABELS = {"bpc": "bits per character", "bits_per_dim": "bits per dim", "accuracy": "accuracy", "bits": "bits"}
METRIC_UNITS = {"bits_per_dim": "bits/dim"}  # in a verdict line; otherwise the metric's own name
SEEDED = re.compile(r"(?P<name>.+)@s(?P<seed>\d+)")


def metric_of(records: list[dict]) -> str:
    for r in records:
        if r.get("metric"):
            return str(r["metric"])
    return "bits"


def final_value(record: dict | None, metric: str) -> float | None:
    if record is None:
        return None
    if record.get("kind") == "eval":
        v = (record.get("metrics") or {}).get(metric)
    else:
        v = ((record.get("final") or {}).get("valid") or {}).get(metric)
    return None if v is None else float(v)


def task_groups(ctx: Context) -> list[str | None]:
    """The task keys of the profile in definition order ([None] for a single task)."""
    if not ctx.spec:
        return [None]
    seen: list[str | None] = []
    for s in ctx.spec.steps:
        if s.kind == "train" and s.task not in seen:
            seen.append(s.task)
    return seen or [None]


def step_name(task: str | None, run: str) -> str:
    return run if task is None else f"{task}.{run}"


def seed_records(ctx: Context, name: str) -> dict[int | None, dict]:
    """The records of a train step over seeds: {None: record} for the step without seeds,
    {seed: record} for its records `<name>@s<seed>`, in seed order ({} if none)."""
    if ctx.record(name) is not None:
        return {None: ctx.record(name)}
    found = {}
    for other, record in ctx.records.items():
        match = SEEDED.fullmatch(other)
        if match and match["name"] == name:
            found[int(match["seed"])] = record
    return dict(sorted(found.items()))


def final_values(records: dict[int | None, dict], metric: str) -> dict[int | None, float]:
    """{seed: final held-out value} of the records that have one."""
    values = {seed: final_value(r, metric) for seed, r in records.items()}
    return {seed: v for seed, v in values.items() if v is not None}


def is_seeded(records: dict[int | None, dict]) -> bool:
    return any(seed is not None for seed in records)


def seeds_text(n: int) -> str:
    return f"({n} seed{'' if n == 1 else 's'})"


def mean_cell(values: list[float]) -> str:
    """`4.012 ± 0.006 (2 seeds)`: the mean over seeds and half their range; `4.012 (1 seed)`."""
    if not values:
        return fmt(None)
    if len(values) == 1:
        return f"{fmt(values[0], 3)} {seeds_text(1)}"
    return f"{fmt(mean(values), 3)} ± {fmt(spread(values), 3)} {seeds_text(len(values))}"


def difference_cell(differences: list[float], ref_name: str) -> str:
    """`+0.012 ± 0.004 vs regular (2 seeds)`: the mean of the per-seed differences and half their range."""
    if not differences:
        return "-"
    if len(differences) == 1:
        return f"{fmt_signed(differences[0], 3)} vs {ref_name} {seeds_text(1)}"
    return (f"{fmt_signed(mean(differences), 3)} ± {fmt(spread(differences), 3)} vs {ref_name}"
            f" {seeds_text(len(differences))}")


def steps_cell(records: dict[int | None, dict]) -> str:
    steps = sorted({r["steps"] for r in records.values() if isinstance(r.get("steps"), int)})
    return ", ".join(f"{n:,}" for n in steps) or "-"


def defined_runs(ctx: Context) -> list[str]:
    if not ctx.spec:
        return []
    runs: list[str] = []
    for s in ctx.spec.steps:
        if s.kind == "train" and s.run not in runs:
            runs.append(s.run)
    return runs


def panel_runs(ctx: Context, panel: dict) -> list[str]:
    """The panel's runs this profile defines (all of them without records)."""
    runs = defined_runs(ctx)
    return [r for r in panel["runs"] if r in runs] if runs else list(panel["runs"])


def group_metric(ctx: Context, task: str | None) -> str:
    """The metric of a task group's records (bpc for text and enwik8, bits_per_dim for images)."""
    return metric_of([r for r in ctx.records.values() if r.get("kind") == "train" and
                      (r.get("labels") or {}).get("task_key") == task])


def panel_row(ctx: Context, task: str | None, run: str, ref_name: str | None, metric: str) -> list[str]:
    """One run of a panel: run, steps, our final value, the paper, the difference to `ref_name`."""
    records = seed_records(ctx, step_name(task, run))
    values = final_values(records, metric)
    refs = final_values(seed_records(ctx, step_name(task, ref_name)), metric) if ref_name else {}
    differences = paired_differences(values, refs) if ref_name and run != ref_name else []
    if is_seeded(records):
        return [run, steps_cell(records), parameters_cell(records), mean_cell(list(values.values())), "curve only",
                difference_cell(differences, str(ref_name))]
    r = records.get(None)
    ours = values.get(None)
    diff = f"{fmt_signed(differences[0], 3)} vs {ref_name}" if differences else "-"
    steps = f"{r['steps']:,}" if r and isinstance(r.get("steps"), int) else "-"
    return [run, steps, parameters_cell(records), fmt(ours, 3), "curve only", diff]


def parameters_cell(records: dict) -> str:
    """The run's parameter count, from its records (the same for every seed): compared runs show
    whether they are the same size, which the paper's Figure 3 claims for reversible layers."""
    counts = sorted({int(r["n_parameters"]) for r in records.values() if isinstance(r.get("n_parameters"), int)})
    return ", ".join(f"{c:,}" for c in counts) if counts else "-"


def panel_verdicts(ctx: Context, task: str | None, panel: dict) -> list[Verdict]:
    """The panel's checks whose run and baseline this profile trains, decided from the records of
    one task group (missing where there are none)."""
    metric = group_metric(ctx, task)
    runs = panel_runs(ctx, panel)
    out = []
    for check in panel.get("checks") or []:
        if check["run"] in runs and check["baseline"] in runs:
            names = [step_name(task, r) for r in (check["run"], check["baseline"])]
            run, base = (final_values(seed_records(ctx, name), metric) for name in names)
            moved = difference_movement(ctx, names[0], names[1], metric)
            out.append(verdict(check, run, base, metric, task, f"{ctx.experiment.name}.md", moved=moved))
    return out


def max_steps_of(records: list[dict]) -> int | None:
    """The longest training the records were set up for (their trainer.max_steps, else their steps)."""
    steps = [((r.get("config") or {}).get("trainer") or {}).get("max_steps") or r.get("steps") for r in records]
    steps = [int(n) for n in steps if isinstance(n, int)]
    return max(steps) if steps else None


def difference_movement(ctx: Context, run: str, baseline: str, metric: str) -> float | None:
    """How much the mean paired difference run - baseline moved over the periodic evaluations of
    the last quarter of training (verdicts.last_quarter_movement); None where that cannot be told."""
    max_steps = max_steps_of([*seed_records(ctx, run).values(), *seed_records(ctx, baseline).values()])
    if max_steps is None:
        return None
    return last_quarter_movement(paired_curve(seed_curves(ctx, run, metric), seed_curves(ctx, baseline, metric)),
                                 max_steps)


def verdicts(ctx: Context) -> list[Verdict]:
    """Every check of the experiment's panels, per task group, in page order."""
    return [v for task in task_groups(ctx) for panel in ctx.experiment.paper.get("panels", [])
            for v in panel_verdicts(ctx, task, panel)]


def verdicts_as_data(ctx: Context) -> list[dict[str, Any]]:
    """The verdicts of an experiment as plain data (claim, verdict, difference, spread, seeds, page, ...)."""
    return [asdict(v) for v in verdicts(ctx)]


def verdict_line(v: Verdict) -> str:
    """`Verdict: <claim> — shared-qk − regular: +0.012 bpc, seeds ±0.008 (2 seeds), last quarter moved
    0.004 (stable: at most 0.010), tolerance 0.02: **holds**`, and the note where there is one."""
    what = f"Verdict: {v.claim} — {v.run} − {v.baseline}: "
    tolerance = f"tolerance {v.tolerance:g}"
    if v.verdict == MISSING:
        return what + f"no paired records, {tolerance}: **{MISSING}**"
    unit = METRIC_UNITS.get(v.metric, v.metric)
    difference = f"{fmt_signed(v.difference, 3)} {unit}"
    seeds = f" {seeds_text(1)}" if v.seeds == 1 else f", seeds ±{fmt(v.spread, 3)} {seeds_text(v.seeds)}"
    moved = ("" if v.moved is None else
             f", last quarter moved {fmt(v.moved, 3)} (stable: at most {fmt(v.stable_within, 3)})")
    note = f" ({v.note})" if v.note else ""
    return what + f"{difference}{seeds}{moved}, {tolerance}: **{v.verdict}**{note}"


def verdict_section(found: list[Verdict]) -> list[str]:
    """`## Verdicts`: each check of the page and its verdict, one line each (none: no section)."""
    if not found:
        return []
    lines = [
        "## Verdicts",
        "",
        "Each claim decided from the records: the difference run − baseline, paired by seed, and its seed"
        " spread (half the range) against the claim's tolerance; one seed is never enough, nor is a difference"
        " still moving: over the periodic evaluations of the last quarter of training (at or after 75% of"
        " its steps) the mean paired difference must move by at most half the larger of the tolerance and"
        " the final difference. Details under each panel.",
        "",
    ]
    for v in found:
        where = f"{v.task}: " if v.task is not None else ""
        note = f" ({v.note})" if v.note else ""
        lines.append(f"- {where}{v.claim}: **{v.verdict}**{note}")
    return lines + [""]


def build(ctx: Context) -> Page:
    paper: dict[str, Any] = ctx.experiment.paper
    tasks = task_groups(ctx)
    metrics = {task: group_metric(ctx, task) for task in tasks}
    labels = {task: METRIC_LABELS.get(m, m) for task, m in metrics.items()}
    lines = header(ctx)
    lines += verdict_section(verdicts(ctx))
    lines += [
        f"The paper publishes {paper.get('published', 'curves only')}. Each table: our final number on held-out"
        " data (`valid` split, the run's last evaluation) and its difference to the panel's baseline run"
        " (ours - baseline), beside what the paper says. `missing`: no record.",
        "",
    ]
    semantics = lsh_semantics(ctx)
    if semantics:
        lines += [f"LSH in these records: {semantics}.", ""]
    shared = shared_records(ctx)
    if shared:
        lines += [f"Trained once for two results (the very same command): {shared}.", ""]
    has_curves = False
    for task in tasks:
        metric, label = metrics[task], labels[task]
        if task is not None:
            lines += [f"## {task}", ""]
        for panel in paper.get("panels", []):
            runs = panel_runs(ctx, panel)
            lines += [f"### {panel['title']}" if task is not None else f"## {panel['title']}", ""]
            body, previous = [], None
            baseline = panel.get("baseline")
            for run in runs:
                ref_name = previous if baseline == "previous" else baseline
                body.append(panel_row(ctx, task, run, ref_name, metric))
                if any(r.get("curve") for r in seed_records(ctx, step_name(task, run)).values()):
                    has_curves = True
                previous = run
            lines += table(["run", "steps", "parameters", f"ours: final {label}", "paper", "difference (ours)"], body)
            lines += ["", f"The paper: {' '.join(str(panel.get('claim', '-')).split())}", ""]
            for v in panel_verdicts(ctx, task, panel):  # a paragraph each
                lines += [verdict_line(v), ""]
    values = paper.get("values") or {}
    if values:
        metric = paper.get("values_metric") or metrics[tasks[0]]
        label = METRIC_LABELS.get(metric, metric)
        lines += ["## Numbers the paper states", "", "Each: **ours / paper / difference** (ours - paper).", ""]
        body = []
        for name, entry in values.items():
            r = ctx.record(name)
            body.append([str(entry.get("what", name)), f"`{name}`", cell(final_value(r, metric), float(entry["value"]), 3)])
        lines += table(["what", "record", f"{label}: ours / paper / difference"], body)
        lines.append("")
    plots = {}
    if has_curves:
        png = f"{ctx.experiment.name}.png"
        lines += [f"![{ctx.experiment.title}]({png})", ""]
        plots[png] = lambda path: plot(ctx, metrics, labels, path)
    lines += recipe(ctx)
    return Page(ctx.experiment.name, "\n".join(lines).rstrip() + "\n", plots)


def lsh_semantics(ctx: Context) -> str:
    """Which LSH the training records computed, read from their stored configs: the paper's rule
    (a query attends only keys of its own bucket) or attention across buckets, with or without the
    duplicate correction. A record from before the rule existed has no `attend_across_buckets`
    key: it attended across buckets. '' when no record trained LSH."""
    found = []
    for r in ctx.records.values():
        attention = ((r.get("config") or {}).get("attention") or {}) if r.get("kind") == "train" else {}
        if not hashes(attention):
            continue
        across = attention.get("attend_across_buckets", True)
        legacy = "attend_across_buckets" not in attention
        text = ("across buckets" if across else "the paper's same-bucket rule") + (
            ", with the duplicate correction" if attention.get("dedup") else ", without the duplicate correction")
        if legacy:
            text += " (trained before the paper's rule was the default)"
        if text not in found:
            found.append(text)
    return "; ".join(found)


def shared_records(ctx: Context) -> str:
    """The records copied from another result's run (`copied_from`, reformer_cli/reproduce/runner.py):
    '`full@s0` is `fig3/regular@s0`, ...', or ''."""
    return ", ".join(f"`{name}` is `{r['copied_from']}`" for name, r in sorted(ctx.records.items())
                     if isinstance(r.get("copied_from"), str))


def data_note(ctx: Context) -> str:
    """What the curves were trained on, from the records: `profile smoke, trained on text (64-token
    windows): not comparable to the paper`."""
    tasks = []
    for r in ctx.records.values():
        task = r.get("task") or {}
        if r.get("kind") == "train" and task.get("name"):
            text = f"{task['name']} ({int(task['seq_len']):,}-token windows)" if task.get("seq_len") else task["name"]
            if text not in tasks:
                tasks.append(text)
    note = f"profile {ctx.profile}" + (f", trained on {' and '.join(tasks)}" if tasks else "")
    return note + ("" if ctx.comparable else ": not comparable to the paper")


def curve(record: dict | None, metric: str) -> dict[int, float]:
    return {int(p["step"]): float(p[metric]) for p in (record or {}).get("curve", []) if p.get(metric) is not None}


def seed_curves(ctx: Context, name: str, metric: str) -> dict[int | None, dict[int, float]]:
    """{seed: {step: value}} of a train step's records (seed None without seeds)."""
    return {seed: curve(r, metric) for seed, r in seed_records(ctx, name).items()}


def paired_curve(run: dict, baseline: dict) -> dict[int, float]:
    """{step: mean over the seeds both have of run - baseline at that step} (each {seed: curve})."""
    out = {}
    for x in sorted({x for c in run.values() for x in c}):
        differences = [run[s][x] - baseline[s][x] for s in run if s in baseline and x in run[s] and x in baseline[s]]
        if differences:
            out[x] = mean(differences)
    return out


def plot(ctx: Context, metrics: dict, labels: dict, path: Path) -> None:
    """Per task and panel: the held-out curves (top; with seeds, every seed's curve in the run's
    colour, extra seeds thinner) and each run's difference to the panel's baseline run at the same
    steps (below; with seeds, the mean of the per-seed differences), where curves that lie on top
    of each other part."""
    tasks = task_groups(ctx)
    panels = ctx.experiment.paper.get("panels", [])
    fig, axes = new_figure(2 * len(tasks), len(panels), width=5.5, height=3.2, height_ratios=[1.0, 0.7] * len(tasks))
    for i, task in enumerate(tasks):
        metric, label = metrics[task], labels[task]
        for j, panel in enumerate(panels):
            top, bottom = axes[2 * i][j], axes[2 * i + 1][j]
            runs = panel_runs(ctx, panel)
            curves = {run: seed_curves(ctx, step_name(task, run), metric) for run in runs}
            baseline = panel.get("baseline")
            baseline = runs[0] if baseline == "previous" or baseline not in runs else baseline
            for k, run in enumerate(runs):
                drawn = [c for c in curves[run].values() if c]
                seeded = is_seeded(curves[run])
                legend = f"{run} {seeds_text(len(drawn))}" if seeded else run
                for n, points in enumerate(drawn):  # every seed: the same colour, extra seeds thinner
                    xs = sorted(points)
                    top.plot(xs, [points[x] for x in xs], markersize=3 if n == 0 else 2,
                             linewidth=1.2 if n == 0 else 0.6, label=None if n else legend, **style(k))
                differences = paired_curve(curves[run], curves[baseline])
                if run != baseline and differences:
                    common = sorted(differences)
                    mean_of = " (mean over seeds)" if seeded else ""
                    bottom.plot(common, [differences[x] for x in common], markersize=3,
                                linewidth=1.2, label=f"{run} - {baseline}{mean_of}", **style(k))
            if ctx.comparable:  # a number the paper states, on the same axis, where it is the same quantity
                for entry in (ctx.experiment.paper.get("values") or {}).values():
                    if ctx.experiment.paper.get("values_metric", metric) == metric:
                        top.axhline(float(entry["value"]), color="black", linestyle=":", linewidth=1.0,
                                    label=f"paper: {entry['value']}" + (" (test)" if "test" in str(entry.get("what")) else ""))
            name = panel["title"] if task is None else f"{task}: {panel['title']}"
            top.set_title(name, fontsize=9)
            top.set_ylabel(f"held-out {label}", fontsize=8)
            mark_empty(bottom, f"no curve to compare with {baseline} yet")
            if bottom.lines:
                bottom.axhline(0.0, color="gray", linewidth=0.8)
            bottom.set_ylabel(f"difference to {baseline}\n({label})", fontsize=8)
            bottom.set_xlabel("training step")
            mark_empty(top)
            for ax in (top, bottom):
                ax.grid(alpha=0.3)
                legend_outside(ax)
    title(fig, ctx.experiment.title, data_note(ctx))
    save(fig, path)
