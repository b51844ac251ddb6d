"""matplotlib (Agg, no display) for the results pages; imported only when a plot is drawn.

What every plot follows: a title wrapped to the figure's width (never cut at an edge), the data it
shows named under it (which profile, which task: a smoke run on a text corpus says so, whatever
the paper's figure was about), curves told apart by colour, marker and line style, and the
legend outside the data.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def style(i: int) -> dict:
    """The i-th curve's look: a colour, a marker and a line style of its own."""
    return {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def new_figure(rows: int, cols: int, width: float = 5.0, height: float = 3.6,
               height_ratios: list[float] | None = None) -> tuple[Any, list[list[Any]]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = height_ratios or [1.0] * rows
    total = sum(height * h for h in heights)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, total + 1.2), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    return fig, [list(row) for row in axes]


def wrap(text: str, width_inches: float, fontsize: float = 10) -> str:
    """`text` in lines that fit `width_inches` at `fontsize` (an average glyph is about 0.55 em),
    of even length (no one-word last line)."""
    chars = max(20, int(width_inches * 72 / (fontsize * 0.55)) - 4)
    lines = []
    for paragraph in text.split("\n"):
        n = max(1, math.ceil(len(paragraph) / chars))
        width = min(chars, math.ceil(len(paragraph) / n))
        while len(textwrap.wrap(paragraph, width)) > n and width < chars:
            width += 1
        lines += textwrap.wrap(paragraph, width) or [""]
    return "\n".join(lines)


def title(fig: Any, text: str, subtitle: str = "") -> None:
    """A figure title wrapped to the figure's width, with a smaller line saying what data it shows."""
    width = fig.get_figwidth()
    fig.suptitle(wrap(text, width, 11) + ("\n" + wrap(subtitle, width * 11 / 9, 9) if subtitle else ""),
                 fontsize=10)


def mark_empty(ax: Any, text: str = "no record yet") -> None:
    """Say so on an axis with nothing drawn."""
    if not ax.lines:
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="gray")


def legend_outside(ax: Any, **kwargs: Any) -> None:
    """The legend to the right of the axes, off the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def legend_below(ax: Any, columns: int = 2) -> None:
    """The legend under the axes, off the data, when its labels are long."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=columns, borderaxespad=0.0)


def save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
