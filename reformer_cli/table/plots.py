"""matplotlib (Agg, no display) for the results pages; imported only when a plot is drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_figure(rows: int, cols: int, width: float = 5.0, height: float = 3.6) -> tuple[Any, list[list[Any]]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.8), squeeze=False)
    return fig, [list(row) for row in axes]


def mark_empty(ax: Any, text: str = "no record yet") -> None:
    """Say so on an axis with nothing drawn."""
    if not ax.lines:
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="gray")


def save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
