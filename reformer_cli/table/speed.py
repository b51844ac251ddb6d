"""Figure 5 (right): attention time by sequence length, batch x length fixed, from a
`reformer bench speed --json` record, beside the paper's digitised seconds per step.

The two are different measurements (ours: forward + backward of attention alone, at the
benchmark's tokens per batch; the paper's: a training step at 32,768 tokens per batch), so the
page compares the shapes: each method's time relative to its own time at the shortest common
length, and each LSH setting's time relative to full attention at the same length."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..attention.registry import baseline
from .common import MISSING, Context, Page, cell, header, table

# The method every other is compared with: the baseline attention's name (`full`, as the records of
# `reformer bench speed` and the paper's digitised methods name it).
BASELINE = baseline().name


def paper_rows(paper: dict) -> dict[int, tuple[int, dict[str, float]]]:
    """length -> (batch, {method: seconds})."""
    methods = list(paper["methods"])
    out = {}
    for length, values in paper["rows"].items():
        out[int(length)] = (int(values[0]), dict(zip(methods, (float(v) for v in values[1:]))))
    return out


def our_rows(result: dict) -> tuple[list[str], dict[int, tuple[Any, dict[str, dict]]]]:
    """(methods in record order, length -> (batch, {method: row}))."""
    methods: list[str] = []
    out: dict[int, tuple[Any, dict[str, dict]]] = {}
    for row in result.get("rows", []):
        method, length = str(row.get("method")), int(row.get("length"))
        if method not in methods:
            methods.append(method)
        batch, by_method = out.setdefault(length, (row.get("batch"), {}))
        by_method[method] = row
    return methods, dict(sorted(out.items()))


def ms(row: dict | None) -> float | None:
    if row is None or row.get("ms") is None or row.get("error"):
        return None
    return float(row["ms"])


def shown_ms(row: dict | None) -> str:
    if row is None:
        return MISSING
    if row.get("error"):
        return str(row["error"])
    if row.get("ms") is None:
        return "-"
    spread = f" ({float(row['ms_min']):.2f}-{float(row['ms_max']):.2f})" if row.get("ms_min") is not None \
        and row.get("ms_max") is not None and row.get("repeats", 2) != 1 else ""
    return f"{float(row['ms']):.2f}{spread}"


def crossover(times: dict[int, dict[str, float | None]], method: str) -> int | None:
    """The shortest length from which on `method` is faster than full attention at every longer
    length measured (medians); None when it is not faster at the longest length."""
    found = None
    for length in sorted(times, reverse=True):
        full, other = times[length].get(BASELINE), times[length].get(method)
        if full is None or other is None or other >= full:
            break
        found = length
    return found


def bench_records(ctx: Context) -> list[dict]:
    """The profile's speed records in step order (a profile may time long lengths in a step of its own)."""
    return [r for r in ctx.records.values() if r.get("kind") == "bench"]


def build(ctx: Context) -> Page:
    paper = ctx.experiment.paper
    records = bench_records(ctx)
    record = records[0] if records else None
    result = (record or {}).get("result") or {}
    methods, ours = our_rows({"rows": [row for r in records for row in ((r.get("result") or {}).get("rows") or [])]})
    theirs = paper_rows(paper)
    lines = header(ctx)
    tokens = result.get("tokens")
    lines += [
        f"Ours: `reformer bench speed`, forward + backward of the attention alone, {tokens or '?':,}"
        f" tokens per batch, {result.get('heads', '?')} heads of {result.get('d_head', '?')},"
        f" {'causal' if result.get('causal', True) else 'not causal'}, {result.get('dtype', '?')}, LSH chunks of"
        f" {result.get('chunk_length', '?')}; milliseconds. The paper: {paper['unit']} at"
        f" {int(paper['tokens']):,} tokens per batch ({paper.get('uncertainty', '')})."
        " **Different problems and units: compare how times grow, not the times.**"
        if record else "No benchmark record: the tables below show the paper's numbers only.",
        "",
    ]
    if record:
        lines += ["## Ours (ms)", ""]
        if any(row.get("ms_min") is not None for _, rows in ours.values() for row in rows.values()):
            lines += ["Each cell: the median of the timed calls (their min-max).", ""]
        body = [[f"{length:,}", str(batch)] + [shown_ms(rows.get(m)) for m in methods] for length, (batch, rows) in ours.items()]
        lines += table(["length", "batch", *methods], body)
        lines.append("")
    lines += [f"## The paper ({paper['unit']}, digitised)", ""]
    pm = list(paper["methods"])
    lines += table(["length", "batch", *pm],
                   [[f"{length:,}", str(b), *(f"{v[m]:.2f}" for m in pm)] for length, (b, v) in theirs.items()])
    lines.append("")

    common = [length for length in theirs if length in ours]
    if common:
        base = common[0]
        lines += [
            f"## Growth with length: time / time at length {base:,}",
            "",
            "Each cell: **ours / paper / difference**. The paper's claim: "
            + " ".join(str(paper.get("claim", "")).split()) + " (LSH ratios near 1, full attention's growing).",
            "",
        ]
        body = []
        for length in common:
            row = [f"{length:,}"]
            for m in pm:
                o0, o = ms(ours[base][1].get(m)), ms(ours[length][1].get(m))
                ratio = o / o0 if o is not None and o0 else None
                row.append(cell(ratio, round(theirs[length][1][m] / theirs[base][1][m], 2), 2, as_printed=False))
            body.append(row)
        lines += table(["length", *pm], body)
        lines.append("")
        lines += ["## Relative to full attention at the same length: time / full attention's time", "",
                  "Each cell: **ours / paper / difference**; below 1: faster than full attention.", ""]
        body = []
        for length in common:
            row = [f"{length:,}"]
            full_ours = ms(ours[length][1].get(BASELINE))
            for m in pm[1:] if pm and pm[0] == BASELINE else pm:
                o = ms(ours[length][1].get(m))
                ratio = o / full_ours if o is not None and full_ours else None
                row.append(cell(ratio, round(theirs[length][1][m] / theirs[length][1][BASELINE], 2), 2, as_printed=False))
            body.append(row)
        lines += table(["length", *(m for m in pm if m != BASELINE)], body)
        lines.append("")
    elif record:
        lines += ["No sequence length is in both ours and the paper's: no ratio to compare.", ""]
    if record:
        lines += crossovers(methods, ours, theirs)
        found = flatness(ours)
        if found is not None:
            lines += [f"Verdict: the paper's claim that LSH attention's speed remains flat while full attention's"
                      f" time grows with length — {found[0]}: **{found[1]}** (rule: {FLAT_RULE}).", ""]
    commands = [(r.get("result") or {}).get("command") for r in records]
    if [c for c in commands if c]:
        lines += [f"Benchmark command{'s' if len(commands) > 1 else ''}: "
                  + "; ".join(f"`{c}`" for c in commands if c), ""]
    plots = {}
    png = f"{ctx.experiment.name}.png"
    lines += [f"![{ctx.experiment.title}]({png})", ""]
    plots[png] = lambda path: plot(ctx, methods, ours, theirs, path)
    lines += how_measured(ctx)
    return Page(ctx.experiment.name, "\n".join(lines).rstrip() + "\n", plots)


def crossovers(methods: list[str], ours: dict, theirs: dict) -> list[str]:
    """Where each LSH setting overtakes full attention, ours (medians of the records) beside the paper's.
    Where full attention failed (out of memory) and LSH ran, LSH counts as faster."""
    mine = {length: {m: ms(rows.get(m)) for m in methods} for length, (_, rows) in ours.items()}
    for length, (_, rows) in ours.items():  # full attention out of memory (or failed) where LSH ran: LSH wins
        if (rows.get(BASELINE) or {}).get("error"):
            mine[length][BASELINE] = math.inf
    paper = {length: dict(values) for length, (_, values) in theirs.items()}
    lsh = [m for m in methods if m != BASELINE and BASELINE in methods]
    if not lsh:
        return []
    lines = ["## Where LSH overtakes full attention", "",
             "The shortest length from which on each LSH setting's median time is below full attention's at"
             f" every longer length measured (ours: {min(mine):,} to {max(mine):,}; the paper:"
             f" {min(paper):,} to {max(paper):,}; the shortest length itself: already faster there; where full attention ran"
             " out of memory, LSH counts as faster).", ""]

    def shown(length: int | None, lengths: dict) -> str:
        return f"{length:,}" if length is not None else f"not by {max(lengths):,}"

    body = [[m, shown(crossover(mine, m), mine), shown(crossover(paper, m), paper) if m in next(iter(paper.values()), {}) else "-"]
            for m in lsh]
    lines += table(["method", "ours", "paper"], body)
    lines.append("")
    return lines


FLAT_RULE = ("holds where, over lengths at least 4x apart, every LSH setting's time grows at most 2x and"
             " full attention's at least twice as much as the fastest-growing LSH setting's; does not hold"
             " otherwise; inconclusive over a shorter span")


def flatness(ours: dict) -> tuple[str, str] | None:
    """(the measured growth, the verdict) of the paper's speed claim over our lengths (FLAT_RULE), or
    None without full attention and LSH at two lengths."""
    lengths = [length for length, (_, rows) in ours.items()
               if ms(rows.get(BASELINE)) is not None and any(m != BASELINE and ms(r) is not None for m, r in rows.items())]
    if len(lengths) < 2:
        return None
    short, long = min(lengths), max(lengths)
    growth = {m: ms(ours[long][1].get(m)) / ms(ours[short][1].get(m)) for m in ours[short][1]
              if ms(ours[short][1].get(m)) and ms(ours[long][1].get(m)) is not None}
    if BASELINE not in growth or len(growth) < 2:
        return None
    lsh = {m: g for m, g in growth.items() if m != BASELINE}
    measured = (f"from {short:,} to {long:,}: {BASELINE} x{growth[BASELINE]:.1f}, "
                + ", ".join(f"{m} x{g:.2f}" for m, g in lsh.items()))
    if long / short < 4:
        return measured, "inconclusive at this scale"
    flat = max(lsh.values()) <= 2 and growth[BASELINE] >= 2 * max(lsh.values())
    return measured, "holds" if flat else "does not hold"


def claim_rows(ctx: Context) -> list[tuple[str, str, str, str]]:
    """The README's line for the paper's speed claim: (claim, measured, seeds, verdict)."""
    records = bench_records(ctx)
    _, ours = our_rows({"rows": [row for r in records for row in ((r.get("result") or {}).get("rows") or [])]})
    found = flatness(ours)
    if found is None:
        return []
    return [("LSH attention's speed remains flat with length while full attention's time grows (Figure 5 right)",
             found[0], "- (medians of timed repeats)", found[1])]


def reference_length(ours: dict, theirs: dict) -> tuple[int | None, int | None]:
    """The lengths each source is normalised at: the shortest length both have (one reference, so
    the curves share a unit), else each one's shortest."""
    common = [length for length in theirs if length in ours]
    if common:
        return common[0], common[0]
    return (next(iter(ours), None), next(iter(theirs), None))


def plot(ctx: Context, methods: list[str], ours: dict, theirs: dict, path: Path) -> None:
    """Ours and the paper's on one axis in one unit: each method's time relative to full
    attention's time at the reference length, ours solid, the paper's dashed, one colour per method."""
    from matplotlib.lines import Line2D

    from .plots import new_figure, save, title

    paper = ctx.experiment.paper
    pm = list(paper["methods"])
    every = list(dict.fromkeys([*pm, *methods]))
    colour = {m: f"C{i % 10}" for i, m in enumerate(every)}
    ours_ref, paper_ref = reference_length(ours, theirs)
    fig, axes = new_figure(1, 1, width=7.0, height=4.2)
    ax = axes[0][0]
    full_ours = ms(ours[ours_ref][1].get(BASELINE)) if ours_ref in ours else None
    for m in methods:
        points = [(length, ms(rows.get(m)) / full_ours) for length, (_, rows) in ours.items()
                  if full_ours and ms(rows.get(m)) is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, color=colour[m], marker="o", linestyle="-", linewidth=1.6)
    full_paper = theirs[paper_ref][1][BASELINE] if paper_ref in theirs else None
    for m in pm:
        xs = list(theirs)
        ax.plot(xs, [theirs[x][1][m] / full_paper for x in xs], color=colour[m], marker="s", markersize=4,
                linestyle="--", linewidth=1.2, alpha=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (batch x length fixed)")
    same = ours_ref == paper_ref
    ax.set_ylabel(f"time / full attention's time at length {paper_ref:,}" if same else
                  "time / full attention's time at its shortest length")
    ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], color=colour[m], linewidth=2, label=m) for m in every]
    handles += [Line2D([], [], color="black", linestyle="-", marker="o", label="ours"),
                Line2D([], [], color="black", linestyle="--", marker="s", markersize=4, label="paper (digitised)")]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if not ours:
        ax.text(0.5, 0.05, "no benchmark record yet: the paper's curves only", transform=ax.transAxes,
                ha="center", color="gray")
    note = f"profile {ctx.profile}" + ("" if ctx.comparable else ", not comparable") if ctx.profile else "no record"
    record = next(iter(bench_records(ctx)), None)
    tokens = ((record or {}).get("result") or {}).get("tokens")
    ours_text = f"ours ({note}): attention forward + backward" + (f", {tokens:,} tokens per batch" if tokens else "")
    title(fig, ctx.experiment.title,
          f"{ours_text}; paper: a training step at {int(paper['tokens']):,} tokens per batch. Different problems,"
          " so both are shown relative to full attention at the same length: compare how they grow")
    save(fig, path)


def how_measured(ctx: Context) -> list[str]:
    """The profile's `recipe` under a benchmark's heading (the memory page's too): how it was measured and why."""
    if not ctx.spec or not ctx.spec.recipe:
        return []
    return ["## How it was measured, and why", "", ctx.spec.recipe, ""]
