"""Figures 3, 4 and 5 (left): learning curves the paper shows without numbers. The page gives
each run's final held-out number, its difference to the panel's baseline run and the paper's
words; the plot redraws the curves from the validation points stored in the records. Numbers the
paper does state (`paper.values`) get their own `ours / paper / difference` table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import Context, Page, cell, fmt, fmt_signed, header, recipe, table

METRIC_LABELS = {"bpc": "bits per character", "bits_per_dim": "bits per dim", "accuracy": "accuracy", "bits": "bits"}


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


def build(ctx: Context) -> Page:
    paper: dict[str, Any] = ctx.experiment.paper
    tasks = task_groups(ctx)
    metrics = {task: group_metric(ctx, task) for task in tasks}
    labels = {task: METRIC_LABELS.get(m, m) for task, m in metrics.items()}
    lines = header(ctx)
    lines += [
        f"The paper publishes {paper.get('published', 'curves only')}. Each table: our final number on held-out"
        " data (`valid` split, the run's last evaluation) and its difference to the panel's baseline run"
        " (ours - baseline), beside what the paper says. `missing`: no record.",
        "",
    ]
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
                r = ctx.record(step_name(task, run))
                ours = final_value(r, metric)
                ref_name = previous if baseline == "previous" else baseline
                ref = final_value(ctx.record(step_name(task, ref_name)), metric) if ref_name else None
                if run == ref_name or ref_name is None or ours is None or ref is None:
                    diff = "-"
                else:
                    diff = f"{fmt_signed(ours - ref, 3)} vs {ref_name}"
                steps = f"{r['steps']:,}" if r and isinstance(r.get("steps"), int) else "-"
                body.append([run, steps, fmt(ours, 3), "curve only", diff])
                if r and r.get("curve"):
                    has_curves = True
                previous = run
            lines += table(["run", "steps", f"ours: final {label}", "paper", "difference (ours)"], body)
            lines += ["", f"The paper: {' '.join(str(panel.get('claim', '-')).split())}", ""]
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


def plot(ctx: Context, metrics: dict, labels: dict, path: Path) -> None:
    """Per task and panel: the held-out curves (top) and each run's difference to the panel's
    baseline run at the same steps (below), where curves that lie on top of each other part."""
    from .plots import legend_outside, mark_empty, new_figure, save, style, title

    tasks = task_groups(ctx)
    panels = ctx.experiment.paper.get("panels", [])
    fig, axes = new_figure(2 * len(tasks), len(panels), width=5.5, height=3.2, height_ratios=[1.0, 0.7] * len(tasks))
    for i, task in enumerate(tasks):
        metric, label = metrics[task], labels[task]
        for j, panel in enumerate(panels):
            top, bottom = axes[2 * i][j], axes[2 * i + 1][j]
            runs = panel_runs(ctx, panel)
            curves = {run: curve(ctx.record(step_name(task, run)), metric) for run in runs}
            baseline = panel.get("baseline")
            baseline = runs[0] if baseline == "previous" or baseline not in runs else baseline
            for k, run in enumerate(runs):
                if curves[run]:
                    xs = sorted(curves[run])
                    top.plot(xs, [curves[run][x] for x in xs], markersize=3, linewidth=1.2, label=run, **style(k))
                common = sorted(set(curves[run]) & set(curves[baseline]))
                if run != baseline and common:
                    bottom.plot(common, [curves[run][x] - curves[baseline][x] for x in common], markersize=3,
                                linewidth=1.2, label=f"{run} - {baseline}", **style(k))
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
