"""Table 2: a matrix of evaluation records, rows = attention in training, columns = attention in
evaluation; every cell `ours / paper / difference`."""

from __future__ import annotations

from typing import Any

from .common import MISSING, Context, Page, cell, duration, fmt, fmt_paper, fmt_signed, header, provenance, recipe, table


def value(record: dict | None, metric: str, scale: float) -> float | None:
    if record is None:
        return None
    metrics = record.get("metrics") or {}
    return None if metrics.get(metric) is None else float(metrics[metric]) * scale


def eval_split(ctx: Context) -> str | None:
    """The split the evaluation records were scored on (`test` for Table 2), if they agree on one."""
    splits = {str(r.get("split")) for r in ctx.records.values() if r.get("kind") == "eval" and r.get("split")}
    return splits.pop() if len(splits) == 1 else None


def build(ctx: Context) -> Page:
    paper: dict[str, Any] = ctx.experiment.paper
    columns, rows = list(paper["columns"]), dict(paper["rows"])
    labels = paper.get("labels", {})
    metric, scale, unit = paper.get("metric", "accuracy"), float(paper.get("scale", 1)), paper.get("unit", "")
    tolerance = paper.get("tolerance")

    split = eval_split(ctx)
    on_split = f" on the `{split}` split" if split else ""
    lines = header(ctx)
    lines += [
        f"Each cell: **ours / paper / difference** ({metric} in {unit}{on_split}; difference = ours - paper)."
        " `missing`: no record for that cell.",
        "",
    ]
    corner = f"{paper.get('rows_title', 'row')} \\ {paper.get('columns_title', 'column')}"
    body, compared, misses, missing = [], 0, [], 0
    for row, paper_values in rows.items():
        cells = [labels.get(row, row)]
        for col, paper_value in zip(columns, paper_values):
            ours = value(ctx.record(f"{row}__{col}"), metric, scale)
            cells.append(cell(ours, paper_value))
            if ours is None:
                missing += 1
                continue
            compared += 1
            if tolerance is not None and abs(ours - paper_value) > tolerance:
                misses.append((abs(ours - paper_value), f"{labels.get(row, row)} -> {labels.get(col, col)}",
                               ours - paper_value))
        body.append(cells)
    lines += table([corner, *(labels.get(c, c) for c in columns)], body)
    lines.append("")

    total = sum(len(v) for v in rows.values())
    if tolerance is not None:
        within = compared - len(misses)
        summary = f"Within {fmt_paper(tolerance)} points of the paper: **{within} of {total}** cells"
        if missing:
            summary += f" ({missing} missing)"
        if not ctx.comparable and ctx.profile is not None:
            why = ctx.spec.label.rstrip(".") or f"{ctx.profile} profile: the comparison only exercises the table"
            summary += f" ({why})"
        lines += [summary + ".", ""]
        if misses:
            shown = "; ".join(f"{where} {fmt_signed(diff)}" for _, where, diff in sorted(misses, reverse=True))
            lines += [f"Cells further than {fmt_paper(tolerance)} points from the paper (ours - paper): {shown}.", ""]
    if paper.get("note"):
        lines += [str(paper["note"]).strip(), ""]
    all_rows, all_columns, labels = with_beyond_paper(ctx, list(rows), columns, labels)
    lines += beyond_paper(ctx, all_rows, all_columns, labels, metric, scale, unit)

    trained = [(row, ctx.record(row)) for row in all_rows]
    if any(r for _, r in trained):
        lines += ["## Training runs", ""]
        if split and split != "valid":
            lines += [f"Each run's own final evaluation, on the `valid` split: the cells above are on the `{split}`"
                      " split, so the same model under the same attention can read differently here.", ""]
        body = []
        for row, r in trained:
            if r is None:
                body.append([labels.get(row, row), "missing", "-", "-", "-"])
                continue
            final = ((r.get("final") or {}).get("valid") or {}).get(metric)
            body.append([
                labels.get(row, row),
                f"{r.get('steps', '-'):,}" if isinstance(r.get("steps"), int) else "-",
                fmt(None if final is None else final * scale),
                duration(r.get("train_seconds")),
                str(r.get("device", "-")),
            ])
        lines += table(["trained with", "steps", f"final valid {metric} ({unit})", "training time", "device"], body)
        lines.append("")
    lines += recipe(ctx)
    return Page(ctx.experiment.name, "\n".join(lines).rstrip() + "\n")


def with_beyond_paper(ctx: Context, rows: list[str], columns: list[str], labels: dict
                      ) -> tuple[list[str], list[str], dict]:
    """The paper's rows, columns and labels followed by the definition's `beyond_paper` ones."""
    beyond = ctx.experiment.beyond_paper
    return (
        [*rows, *(r for r in beyond.get("rows") or [] if r not in rows)],
        [*columns, *(c for c in beyond.get("columns") or [] if c not in columns)],
        {**labels, **(beyond.get("labels") or {})},
    )


def beyond_paper(ctx: Context, all_rows: list[str], all_columns: list[str], labels: dict, metric: str,
                 scale: float, unit: str) -> list[str]:
    """The section for runs the paper does not have (the definition's `beyond_paper`): every
    training row under every evaluation column, ours only, since the paper has no number to set
    beside them."""
    beyond = ctx.experiment.beyond_paper
    if not beyond:
        return []
    body = [[labels.get(r, r), *(fmt(value(ctx.record(f"{r}__{c}"), metric, scale)) for c in all_columns)]
            for r in all_rows]
    lines = [f"## Beyond the paper: {beyond.get('title', 'more settings')}", ""]
    if beyond.get("note"):
        lines += [" ".join(str(beyond["note"]).split()), ""]
    split = eval_split(ctx)
    on_split = f" on the `{split}` split" if split else ""
    lines += [f"Ours only ({metric} in {unit}{on_split}); `{MISSING}`: no record.", ""]
    lines += table(["train \\ eval", *(labels.get(c, c) for c in all_columns)], body)
    lines.append("")
    lines += self_weight_table(ctx, all_rows, all_columns, labels)
    lines += checks(ctx, beyond.get("checks") or [], labels, metric, scale, unit)
    return lines


def self_weight_table(ctx: Context, rows: list[str], columns: list[str], labels: dict) -> list[str]:
    """Per cell, the mean attention weight of a query on its own position (evaluations run with
    `self_weight=true`), over the scored positions: how much each evaluated attention lets a
    model look at itself rather than at the copy it must find."""
    measured = [c for c in columns if any((ctx.record(f"{r}__{c}") or {}).get("self_weight") for r in rows)]
    if not measured:
        return []

    def weight(row: str, col: str) -> str:
        w = (ctx.record(f"{row}__{col}") or {}).get("self_weight") or {}
        return fmt(None if w.get("targets") is None else 100 * float(w["targets"]))

    lines = ["Attention on the diagonal: the mean weight (%) a query puts on its own position, over the"
             " positions whose next token is scored (heads and layers averaged), for the evaluations that"
             " measured it.", ""]
    lines += table(["train \\ eval", *(labels.get(c, c) for c in measured)],
                   [[labels.get(r, r), *(weight(r, c) for c in measured)] for r in rows])
    return lines + [""]


def checks(ctx: Context, specs: list[dict], labels: dict, metric: str, scale: float, unit: str) -> list[str]:
    """Each hypothesis of the definition's `beyond_paper.checks` against the numbers: consistent when
    every named row's cell in the named column is within `tolerance` of `expect`, ruled out
    otherwise (the rows that miss are named), open while a cell is missing."""
    if not specs:
        return []
    lines = ["### Hypotheses, tested", ""]
    for spec in specs:
        col, expect, tol = spec["column"], float(spec["expect"]), float(spec["tolerance"])
        values = {r: value(ctx.record(f"{r}__{col}"), metric, scale) for r in spec["rows"]}
        shown = ", ".join(f"{labels.get(r, r)} {fmt(v)}" for r, v in values.items())
        off = [labels.get(r, r) for r, v in values.items() if v is not None and abs(v - expect) > tol]
        if off:
            verdict = f"**ruled out** at this profile: {', '.join(off)} further than {fmt_paper(tol)} points from it"
        elif any(v is None for v in values.values()):
            verdict = "**open**: not every cell has a record"
        else:
            verdict = f"**consistent**: every one within {fmt_paper(tol)} points of it"
        claim = " ".join(str(spec["claim"]).split())
        lines += [f"- {claim}. Column \"{labels.get(col, col)}\": {shown} ({metric} in {unit}; the paper's"
                  f" column: {fmt_paper(expect)}). {verdict}.", ""]
    return lines


def readme_block(ctx: Context, page_path: str) -> str:
    """The Table 2 block of the README: the measured matrix with its provenance (and the profile's
    label when it is scaled down), or, with only unlabelled smoke records, the paper's table and a
    note that it has not been run on a GPU."""
    paper = ctx.experiment.paper
    columns, rows, labels = list(paper["columns"]), dict(paper["rows"]), paper.get("labels", {})
    head = ["train \\ eval", *(labels.get(c, c) for c in columns)]
    if ctx.profile is None or not ctx.records or not (ctx.comparable or ctx.spec.label):
        body = [[labels.get(r, r), *(f"{fmt_paper(v)}" for v in values)] for r, values in rows.items()]
        lines = [
            "**Not yet run on a GPU.** The paper's Table 2 (accuracy %, rows: attention in training, columns:"
            " in evaluation); `make reproduce-table PROFILE=quick` on one H100 fills in ours beside it"
            f" (`{page_path}`):",
            "",
            *table(head, body),
        ]
        return "\n".join(lines)
    metric, scale = paper.get("metric", "accuracy"), float(paper.get("scale", 1))
    body = []
    for row, paper_values in rows.items():
        body.append([labels.get(row, row), *(
            cell(value(ctx.record(f"{row}__{col}"), metric, scale), pv) for col, pv in zip(columns, paper_values)
        )])

    p = provenance(ctx)
    label = [] if ctx.comparable else [f"**{ctx.spec.label}**"]
    lines = [
        *label,
        f"Accuracy % on the `{eval_split(ctx) or 'test'}` split, **ours / paper / difference**; profile"
        f" `{ctx.profile}` ({ctx.spec.about}); {p['devices']},"
        f" {p['dates']}. Details, training runs and what was tried: `{page_path}`.",
        "",
        *table(head, body),
    ]
    return "\n".join(lines)
