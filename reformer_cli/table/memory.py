"""The memory claims (paper section 3, Table 3): activations kept for backward by depth, standard
vs reversible layers, from a `reformer bench memory --json` record. The paper's Table 3 predicts
how they grow with depth (standard: proportional to the number of layers; reversible: constant);
each cell compares our growth with that prediction."""

from __future__ import annotations

from pathlib import Path

from ..attention.registry import hashes
from .common import Context, Page, cell, header, table
from .speed import how_measured  # the benchmarks' recipe heading

MIB = 2**20


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / MIB:,.1f}"


def attention_text(s: dict) -> str:
    """`attention full`, and for an attention that hashes its rounds and chunks: `attention lsh (2
    rounds, chunks of 64)`."""
    return f"attention {s.get('attention')}" + (
        f" ({s.get('rounds')} rounds, chunks of {s.get('chunk_length')})" if hashes(s.get("attention")) else "")


def per_layer(rows: list[dict], layer: str) -> float | None:
    """Saved bytes added per layer: the least-squares slope of saved bytes over depth (None below two depths)."""
    points = [(int(r["depth"]), float(r["saved_bytes"])) for r in rows
              if r.get("layer") == layer and r.get("status") == "ok" and r.get("saved_bytes") is not None]
    if len({d for d, _ in points}) < 2:
        return None
    mean_d = sum(d for d, _ in points) / len(points)
    mean_b = sum(b for _, b in points) / len(points)
    return (sum((d - mean_d) * (b - mean_b) for d, b in points)
            / sum((d - mean_d) ** 2 for d, _ in points))


def table3_memory(s: dict, length: int) -> float:
    """Table 3's activation memory of one layer, up to the factor b: max(l d_ff, n_h l^2) for full
    attention, max(l d_ff, n_h l n_r c) for LSH, which hashes (c: the keys a query sees, fixed by the
    chunk length)."""
    heads, d_ff = int(s.get("heads") or 1), int(s.get("d_ff") or 1)
    if hashes(s.get("attention")):
        return max(length * d_ff, heads * length * int(s.get("rounds") or 1) * 2 * int(s.get("chunk_length") or 1))
    return max(length * d_ff, heads * length * length)


def build(ctx: Context) -> Page:
    paper = ctx.experiment.paper
    records = [r for r in ctx.records.values() if r.get("kind") == "bench"]
    lines = header(ctx)
    lines += [f"The paper: {' '.join(str(paper.get('claim', '')).split())}.", ""]
    if not records:
        lines += ["No benchmark record yet.", ""]
        return Page(ctx.experiment.name, "\n".join(lines).rstrip() + "\n")
    result = records[0].get("result") or {}
    s = result.get("setting") or {}
    several = len(records) > 1
    lines += [
        f"Ours: `reformer bench memory`, one training step; model d_model {s.get('d_model')}, d_ff {s.get('d_ff')},"
        f" {s.get('heads')} heads"
        + ("" if several else f", {attention_text(s)}, length {s.get('length')}")
        + f", batch {s.get('batch')}, precision {result.get('precision')}."
        " 'Saved for backward': the bytes autograd keeps for the backward pass (parameters excluded);"
        " 'peak': the CUDA allocator's peak over the step (GPU only). Growth: saved bytes at this depth /"
        " saved bytes at the shallowest depth; **ours / paper (Table 3) / difference**.",
        "",
    ]
    growth = paper.get("growth") or {}
    for record in records:
        result = record.get("result") or {}
        rows = result.get("results") or []
        setting = result.get("setting") or {}
        if several:
            lines += [f"## {attention_text(setting).capitalize()}, length {int(setting.get('length')):,}", ""]
        lines += depth_table(rows, growth, fresh=result.get("rss") == "each row in a fresh process")
        lines.append("")
        lines += depth_verdict(rows)
        if result.get("command"):
            lines += [f"Benchmark command: `{result['command']}`", ""]
    if several:
        lines += length_table(records)
    png = f"{ctx.experiment.name}.png"
    lines += [f"![{ctx.experiment.title}]({png})", ""]
    lines += how_measured(ctx)
    first_rows = (records[0].get("result") or {}).get("results") or []
    return Page(ctx.experiment.name, "\n".join(lines).rstrip() + "\n", {png: lambda path: plot(ctx, first_rows, path)})


def depth_table(rows: list[dict], growth: dict, fresh: bool) -> list[str]:
    """Saved bytes by layer kind and depth, with the growth Table 3 predicts; with each row measured
    in a fresh process, also its peak RSS rise (the process's real memory, weights and all)."""
    first: dict[str, tuple[int, int]] = {}
    body = []
    for r in rows:
        layer, depth = r.get("layer"), int(r.get("depth"))
        rss = [mib(r.get("rss_rise_bytes"))] if fresh else []
        if r.get("status") != "ok" or r.get("saved_bytes") is None:
            body.append([str(layer), str(depth), str(r.get("status")), "-", *(["-"] if fresh else []), "-"])
            continue
        first.setdefault(layer, (depth, int(r["saved_bytes"])))
        d0, b0 = first[layer]
        ours = r["saved_bytes"] / b0 if b0 else None
        expected = {"depth": depth / d0, "constant": 1.0}.get(growth.get(layer))
        body.append([str(layer), str(depth), mib(r.get("saved_bytes")), mib(r.get("peak_bytes")), *rss,
                     cell(ours, None if expected is None else round(expected, 2), 2, as_printed=False)])
    return table(["layers", "depth", "saved for backward (MiB)", "peak (MiB)",
                  *(["peak RSS rise (MiB)"] if fresh else []),
                  f"growth vs depth {min((d for d, _ in first.values()), default='-')}"], body)


DEPTH_SHARE = 0.05  # the claim holds where reversible layers add under 5% of the standard's growth per layer


def depth_share(rows: list[dict]) -> tuple[float, float] | None:
    """(the standard layers' saved bytes per added layer, the reversible's share of it), or None."""
    standard, reversible = per_layer(rows, "standard"), per_layer(rows, "reversible")
    if standard is None or reversible is None or standard <= 0:
        return None
    return standard, reversible / standard


def depth_verdict(rows: list[dict]) -> list[str]:
    """Table 3's claim on depth in one line: each added layer's saved bytes, standard vs reversible."""
    found = depth_share(rows)
    if found is None:
        return []
    standard, share = found
    reversible = share * standard
    holds = "holds" if abs(share) < DEPTH_SHARE else "does not hold"
    return [f"Per added layer (least-squares slope over the depths): standard +{standard / MIB:,.1f} MiB,"
            f" reversible {reversible / MIB:+,.2f} MiB ({share:.1%} of the standard's). Table 3's claim that a"
            f" reversible model's activations do not grow with the number of layers: **{holds}** here"
            " (within 5% of the standard's growth per layer).", ""]


def length_table(records: list[dict]) -> list[str]:
    """Saved bytes at the deepest depth by length, beside the growth Table 3 predicts from the
    shortest length of the same attention."""
    lines = ["## By length", "",
             "Saved bytes at the deepest depth measured; growth: this length's bytes / the shortest length's of the"
             " same attention and depth, **ours / Table 3 / difference** (Table 3's per-layer memory, max(l d_ff,"
             " n_h l^2) for full attention and max(l d_ff, n_h l n_r c) for LSH, at each length; it names the"
             " largest term only, so it predicts the order of the growth, not its exact value).", ""]
    base: dict[tuple, tuple[int, float]] = {}
    body = []
    for record in sorted(records, key=lambda r: int(((r.get("result") or {}).get("setting") or {}).get("length") or 0)):
        result = record.get("result") or {}
        s = result.get("setting") or {}
        length = int(s.get("length") or 0)
        for layer in ("standard", "reversible"):
            ok = [r for r in result.get("results") or []
                  if r.get("layer") == layer and r.get("status") == "ok" and r.get("saved_bytes") is not None]
            if not ok:
                continue
            deepest = max(ok, key=lambda r: int(r["depth"]))
            key = (attention_text(s), layer, int(deepest["depth"]))
            base.setdefault(key, (length, float(deepest["saved_bytes"])))
            l0, b0 = base[key]
            predicted = table3_memory(s, length) / table3_memory(s, l0)
            body.append([attention_text(s).removeprefix("attention "), f"{length:,}", layer, str(deepest["depth"]), mib(deepest["saved_bytes"]),
                         cell(deepest["saved_bytes"] / b0 if b0 else None, round(predicted, 2), 2, as_printed=False)])
    lines += table(["attention", "length", "layers", "depth", "saved for backward (MiB)", "growth vs the shortest length"],
                   body)
    lines.append("")
    return lines


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


def claim_rows(ctx: Context) -> list[tuple[str, str, str, str]]:
    """The README's line for Table 3's depth claim: (claim, measured, seeds, verdict) over every
    record of the profile (bytes saved for backward do not vary between runs: no seeds)."""
    shares = [found for record in ctx.records.values() if record.get("kind") == "bench"
              if (found := depth_share(((record.get("result") or {}).get("results") or []))) is not None]
    if not shares:
        return []
    worst = max(abs(share) for _, share in shares)
    verdict = "holds" if worst < DEPTH_SHARE else "does not hold"
    measured = (f"reversible per added layer: at most {worst:.1%} of the standard's (standard: +{min(s for s, _ in shares) / MIB:,.1f}"
                f" to +{max(s for s, _ in shares) / MIB:,.1f} MiB per layer),"
                f" {len(shares)} setting{'s' if len(shares) != 1 else ''}")
    return [("a reversible model's activations do not grow with the number of layers (Table 3)", measured,
             "- (bytes, not timed)", verdict)]
