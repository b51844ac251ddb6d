"""`reformer compare`: several runs side by side, offline: compare.png (each run's held-out curve and
training loss, aligned by step or by tokens) and compare.md (a table of final and best metric,
steps, tokens, parameters and time). Reads run folders only (run_records.py); no torch, no W&B.

A run is named by its folder when given as a run folder, and a sweep folder (or any folder) stands
for every run under it, in folder order. Two runs of one name are told apart by their folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import UserError
from .records import write_text_atomic
from .run_records import HIGHER_IS_BETTER, MalformedRun, Run, find_run_folders, is_run_folder, read_run
from .table.plots import legend_outside, mark_empty, new_figure, save, style, title
from .text import clock, escape_bars, markdown_table

OUTPUTS = ("compare.png", "compare.md")
X_AXES = ("step", "tokens")


def collect(paths: list[Path]) -> tuple[list[Run], list[str]]:
    """(the runs `paths` name, one line per folder skipped as malformed). UserError when a path
    does not exist or holds no run."""
    runs: list[Run] = []
    skipped: list[str] = []
    seen: set[Path] = set()
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"{path}: no such folder (give run folders or sweep folders)")
        folders = [path] if is_run_folder(path) else sorted(find_run_folders([path]), key=_folder_order)
        if not folders:
            raise UserError(f"{path}: no run there (a run folder holds config.yaml and metrics.jsonl)")
        for folder in folders:
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            try:
                runs.append(read_run(folder))
            except MalformedRun as exc:
                skipped.append(str(exc))
    if not runs:
        raise UserError("no readable run to compare")
    return runs, skipped


def _folder_order(folder: Path) -> tuple:
    """Sweep jobs (0, 1, ..., 10) by number, other folders by name."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in folder.parts)


def labels(runs: list[Run]) -> list[str]:
    """Each run's name, with its folder's name when another run has the same name."""
    names = [r.name for r in runs]
    return [f"{r.name} ({r.folder.name})" if names.count(r.name) > 1 else r.name for r in runs]


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def markdown(runs: list[Run], metric: str, shown: Any = str) -> str:
    header = ["run", "status", f"final valid {metric}", f"best valid {metric}", "steps", "tokens", "parameters",
              "time", "folder"]
    rows = []
    for run, label in zip(runs, labels(runs)):
        final = run.final if run.metric == metric else None
        best = run.best if run.metric == metric else _best_in_records(run, metric)
        rows.append([label, run.status, _num(final), _num(best), f"{_num(run.steps)}/{_num(run.max_steps)}",
                     _num(run.tokens), _num(run.parameters), clock(run.seconds), shown(run.folder)])
    lines = [f"# Comparison of {len(runs)} run(s)", "",
             "Final: the run's final evaluation on the validation split; best: its best periodic evaluation.",
             "Time: wall-clock time of the run. Curves: compare.png.", "", *markdown_table(header, rows, escape_bars)]
    return "\n".join(lines) + "\n"


def _best_in_records(run: Run, metric: str) -> float | None:
    _, ys = run.curve("valid", metric)
    if not ys:
        return None
    return max(ys) if metric in HIGHER_IS_BETTER else min(ys)


def plot(runs: list[Run], metric: str, x: str, path: Path) -> None:
    """Two panels: the held-out `metric` and the training loss of each run against `x`; one legend
    (a run has one colour, marker and line style in both) to the right of them."""
    fig, axes = new_figure(1, 2, width=5.5, height=3.8)
    held_out, train = axes[0]
    for i, (run, label) in enumerate(zip(runs, labels(runs))):
        look = style(i)
        for ax, split, key in ((held_out, "valid", metric), (train, "train", "loss")):
            xs, ys = run.curve(split, key, x)
            if xs:
                ax.plot(xs, ys, label=label, markersize=4, markevery=max(1, len(xs) // 12), **look)
    x_label = "training tokens" if x == "tokens" else "training step"
    for ax, name in ((held_out, f"valid {metric}"), (train, "train loss")):
        ax.set_xlabel(x_label)
        ax.set_ylabel(name)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        mark_empty(ax, "no records")
    legend_outside(train if train.lines else held_out)  # to the right, off the data
    tasks = sorted({r.task for r in runs})
    title(fig, f"{len(runs)} run(s): held-out {metric} and training loss by {x}",
          f"task {', '.join(tasks)}; folders: {', '.join(sorted({str(r.folder.parent) for r in runs}))}")
    save(fig, path)


def write(runs: list[Run], out: Path, metric: str | None, x: str, force: bool, shown: Any = str,
          plots: bool = True) -> list[Path]:
    """compare.png and compare.md in `out`; UserError when they exist and not `force`."""
    if x not in X_AXES:
        raise UserError(f"--x {x}: choose one of {', '.join(X_AXES)}")
    metric = metric or runs[0].metric
    if not any(run.curve("valid", metric)[1] or run.final is not None and run.metric == metric for run in runs):
        known = sorted({k for r in runs for rec in r.records if rec.get("split") == "valid" for k in rec
                        if k not in ("step", "split", "nonfinite")})
        raise UserError(f"--metric {metric}: no run records it (held-out metrics here: {', '.join(known) or 'none'})")
    out = Path(out)
    targets = [out / name for name in OUTPUTS if plots or name.endswith(".md")]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise UserError(f"{', '.join(existing)} exists: pass --force to replace it, or --out another folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: compare.md cannot be written in it")
    out.mkdir(parents=True, exist_ok=True)

    if plots:
        plot(runs, metric, x, out / "compare.png")
    write_text_atomic(out / "compare.md", markdown(runs, metric, shown))
    return targets
