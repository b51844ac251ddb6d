"""Figure 4's cpu models evaluated under every attention of the figure: does LSH attention
approximate full attention (over the same shared keys) for a model trained on text, and does a
model trained with LSH use more context when it is given all of it?

Each trained model (full attention over shared keys: Figure 3's `shared-qk`; LSH-1/2/4/8: Figure
4's) is evaluated, with the same weights, under full attention over shared keys (unit keys, self
mask) and under LSH with 1, 2, 4 and 8 rounds in chunks of 32 (the runs' own setting), on the
same validation batches (the first `--batches`, as the runs' periodic evaluations: with 8, a
model's own cell equals the last point of its curve). Two `reformer eval -m` sweeps per seed do
the work; this script only runs them and puts their records in one table.

    python scripts/lsh_eval_grid_cpu.py --root . --seeds 0 --out results/lsh_eval_grid_cpu

`--root`: the folder `make reproduce-table PROFILE=cpu` ran in (its outputs/reproduce/cpu/ holds the
checkpoints of fig3 and fig4). Writes OUT.json (every eval record, checkpoints named relative to
--root) and OUT.table.md (the table; with two or more seeds also their means). `--table-only`
rebuilds the table from OUT.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reformer_cli.reproduce.folders import train_completed  # noqa: E402

TRAINED = [("full-shared-qk", "fig3/shared-qk"), ("lsh-1", "fig4/lsh-1"), ("lsh-2", "fig4/lsh-2"),
           ("lsh-4", "fig4/lsh-4"), ("lsh-8", "fig4/lsh-8")]
COMMON = ["split=valid", "precision=fp32", "device=cpu", "progress=none"]
SWEEPS = {
    "full-shared-qk": ["attention=full", "attention.shared_qk=true", "attention.shared_qk_keys=unit",
                       "attention.self_mask=true"],
    "lsh": ["attention=lsh", "attention.chunk_length=32", "attention.n_rounds=1,2,4,8"],
}
# the trained run's task, model and layer: the same in every record, and in the training runs' records
DROPPED = ("task", "model", "layer")
EVALUATED = ["full-shared-qk", "lsh-1", "lsh-2", "lsh-4", "lsh-8"]


def sweep(root: Path, checkpoints: list[str], attention: list[str], batches: int) -> list[dict]:
    """One `reformer eval -m` over the checkpoints; its records (in the sweep's sweep.json)."""
    before = set((root / "multirun" / "eval").glob("*")) if (root / "multirun" / "eval").is_dir() else set()
    command = [sys.executable, "-m", "reformer_cli", "eval", "-m", f"checkpoint={','.join(checkpoints)}",
               *attention, f"max_batches={batches}", *COMMON]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=root, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    (folder,) = set((root / "multirun" / "eval").glob("*")) - before
    jobs = json.loads((folder / "sweep.json").read_text())["jobs"]
    failed = [j["name"] for j in jobs if j["status"] != "ok"]
    if failed:
        raise SystemExit(f"error: evaluations failed: {', '.join(failed)} (see {folder})")
    return [j["result"] for j in jobs]


def evaluated_label(record: dict) -> str:
    a = record["evaluated_attention"]
    return f"lsh-{a['n_rounds']}" if a["name"] == "lsh" else "full-shared-qk"


def trained_label(record: dict) -> tuple[str, int]:
    """(trained run, seed) from the record's checkpoint path, `.../<fig>/<run>@s<seed>/checkpoints/...`."""
    run, seed = Path(record["checkpoint"]).parent.parent.name.rsplit("@s", 1)
    figure = Path(record["checkpoint"]).parent.parent.parent.name
    return {fig_run: name for name, fig_run in TRAINED}[f"{figure}/{run}"], int(seed)


def table(records: list[dict]) -> str:
    """Markdown: a row per trained model and seed, then (with 2+ seeds) the mean over seeds."""
    cells: dict[tuple[str, int], dict[str, float]] = {}
    for r in records:
        cells.setdefault(trained_label(r), {})[evaluated_label(r)] = r["metrics"]["bpc"]
    seeds = sorted({seed for _, seed in cells})
    rows = [(f"{t} (seed {s})", t, cells[(t, s)]) for s in seeds for t, _ in TRAINED if (t, s) in cells]
    if len(seeds) > 1:
        for t, _ in TRAINED:
            if all((t, s) in cells for s in seeds):
                rows.append((f"{t} (mean of {len(seeds)} seeds)", t,
                             {e: sum(cells[(t, s)][e] for s in seeds) / len(seeds) for e in EVALUATED}))
    lines = ["| trained \\ evaluated | " + " | ".join(EVALUATED) + " |", "|---" * (len(EVALUATED) + 1) + "|"]
    for label, trained, row in rows:
        lines.append(f"| {label} | " + " | ".join(
            f"**{row[e]:.3f}**" if e == trained else f"{row[e]:.3f}" for e in EVALUATED) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table-only", action="store_true", help="rebuild OUT.table.md from OUT.json")
    args = parser.parse_args()
    if args.table_only:
        text = table(json.loads(Path(f"{args.out}.json").read_text()))
        Path(f"{args.out}.table.md").write_text(text)
        print(text, end="")
        return
    root = args.root.resolve()
    records = []
    for seed in args.seeds:
        folders = [f"outputs/reproduce/cpu/{run}@s{seed}" for _, run in TRAINED]
        missing = [f for f in folders if not train_completed(root / f)]
        if missing:
            raise SystemExit(f"error: no finished training run in {', '.join(missing)} under {root}: train them"
                             " first (reformer reproduce --profile cpu --only fig3,fig4)")
        for attention in SWEEPS.values():
            for r in sweep(root, folders, attention, args.batches):
                # the path as it is under --root (a symlinked folder stays as named), not this machine's
                checkpoint = Path(r["checkpoint"])
                r["checkpoint"] = str(Path(*checkpoint.parts[checkpoint.parts.index("outputs"):]))
                records.append({k: v for k, v in r.items() if k not in DROPPED})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")  # a record a line
    text = table(records)
    Path(f"{args.out}.table.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
