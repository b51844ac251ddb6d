"""The memory claims (paper section 3, Table 3): activations kept for backward by depth, standard
vs reversible layers, from a `reformer bench memory --json` record. The paper's Table 3 predicts
how they grow with depth (standard: proportional to the number of layers; reversible: constant);
each cell compares our growth with that prediction."""

from __future__ import annotations

from pathlib import Path

from .common import Context, Page, cell, header, recipe, table

MIB = 2**20


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / MIB:,.1f}"


def build(ctx: Context) -> Page:
    paper = ctx.experiment.paper
    record = next((r for r in ctx.records.values() if r.get("kind") == "bench"), None)
    result = (record or {}).get("result") or {}
    rows = result.get("results") or []
    lines = header(ctx)
    lines += [f"The paper: {' '.join(str(paper.get('claim', '')).split())}.", ""]
    if not record:
        lines += ["No benchmark record yet.", ""]
        return Page(ctx.experiment.name, "\n".join(lines).rstrip() + "\n")
    s = result.get("setting") or {}
    lines += [
        f"Ours: `reformer bench memory`, one training step; model d_model {s.get('d_model')}, d_ff {s.get('d_ff')},"
        f" {s.get('heads')} heads, attention {s.get('attention')}"
        + (f" ({s.get('rounds')} rounds, chunks of {s.get('chunk_length')})" if s.get("attention") == "lsh" else "")
        + f", length {s.get('length')}, batch {s.get('batch')}, precision {result.get('precision')}."
        " 'Saved for backward': the bytes autograd keeps for the backward pass (parameters excluded);"
        " 'peak': the CUDA allocator's peak over the step (GPU only). Growth: saved bytes at this depth /"
        " saved bytes at the shallowest depth; **ours / paper (Table 3) / difference**.",
        "",
    ]
    growth = paper.get("growth") or {}
    first: dict[str, tuple[int, int]] = {}
    body = []
    for r in rows:
        layer, depth = r.get("layer"), int(r.get("depth"))
        if r.get("status") != "ok" or r.get("saved_bytes") is None:
            body.append([str(layer), str(depth), str(r.get("status")), "-", "-"])
            continue
        first.setdefault(layer, (depth, int(r["saved_bytes"])))
        d0, b0 = first[layer]
        ours = r["saved_bytes"] / b0 if b0 else None
        expected = {"depth": depth / d0, "constant": 1.0}.get(growth.get(layer))
        body.append([str(layer), str(depth), mib(r.get("saved_bytes")), mib(r.get("peak_bytes")),
                     cell(ours, None if expected is None else round(expected, 2), 2, as_printed=False)])
    lines += table(["layers", "depth", "saved for backward (MiB)", "peak (MiB)", f"growth vs depth {min((d for d, _ in first.values()), default='-')}"], body)
    lines.append("")
    if result.get("command"):
        lines += [f"Benchmark command: `{result['command']}`", ""]
    png = f"{ctx.experiment.name}.png"
    lines += [f"![{ctx.experiment.title}]({png})", ""]
    lines += recipe(ctx)
    return Page(ctx.experiment.name, "\n".join(lines).rstrip() + "\n", {png: lambda path: plot(ctx, rows, path)})


def plot(ctx: Context, rows: list[dict], path: Path) -> None:
    """Saved bytes by depth, ours solid; beside them, dashed, what the paper's Table 3 predicts from
    our shallowest point (it gives formulas, not numbers): proportional to depth for standard
    layers, constant for reversible ones."""
    from .plots import legend_below, new_figure, save, style, title

    growth = ctx.experiment.paper.get("growth") or {}
    fig, axes = new_figure(1, 1, width=6.5, height=4.2)
    ax = axes[0][0]
    for k, layer in enumerate(dict.fromkeys(r.get("layer") for r in rows)):
        look = style(k)
        points = [(r["depth"], r["saved_bytes"] / MIB) for r in rows
                  if r.get("layer") == layer and r.get("status") == "ok" and r.get("saved_bytes") is not None]
        if points:
            xs, ys = zip(*points)
            rule = growth.get(layer)
            if rule in ("depth", "constant"):  # a wide pale band under ours: visible where the two agree
                predicted = [ys[0] * (x / xs[0] if rule == "depth" else 1.0) for x in xs]
                ax.plot(xs, predicted, color=look["color"], linestyle="-", linewidth=6, alpha=0.25,
                        label=f"{layer}: paper's Table 3 ({'grows with depth' if rule == 'depth' else 'constant'})")
            ax.plot(xs, ys, color=look["color"], marker=look["marker"], linestyle="-", label=f"{layer}: ours")
        peaks = [(r["depth"], r["peak_bytes"] / MIB) for r in rows
                 if r.get("layer") == layer and r.get("status") == "ok" and r.get("peak_bytes") is not None]
        if peaks:
            xs, ys = zip(*peaks)
            ax.plot(xs, ys, color=look["color"], marker="s", linestyle=":", label=f"{layer}: CUDA peak (ours)")
    ax.set_xlabel("layers")
    ax.set_ylabel("MiB saved for backward (parameters excluded)")
    ax.grid(alpha=0.3)
    legend_below(ax)
    note = f"profile {ctx.profile}" + ("" if ctx.comparable else ": not comparable to the paper")
    title(fig, ctx.experiment.title, f"{note}; the pale bands: the growth the paper's Table 3 predicts (it gives"
          " formulas, not numbers), drawn from our shallowest point")
    save(fig, path)
