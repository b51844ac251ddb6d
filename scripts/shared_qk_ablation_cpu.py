"""Why does shared-QK attention cost bits in Figure 3's cpu profile? Three variants of its shared-QK
model, each trained with the very command of `fig3/shared-qk@s<seed>` plus its overrides:

- `shared-qk-raw`: `attention.shared_qk_keys=raw`, keys k = q and logits scaled by 1/sqrt(d_head)
  (plain dot-product attention fed the shared projection), self mask kept. If the unit keys (the
  LSH logits: queries unscaled, no 1/sqrt(d_head)) cost the bits, this model closes the gap.
- `shared-qk-noself`: `attention.self_mask=false`, unit keys, a position may attend to itself.
  If forbidding the own position costs the bits, this model closes the gap.
- `shared-qk-raw-noself`: both overrides, raw keys and no self mask: plain dot-product attention
  whose keys are its queries. What the first two leave open lies with the tying (no key projection)
  or with the self mask under raw keys; this model separates them: if it matches regular attention,
  the tying costs nothing here.

    python scripts/shared_qk_ablation_cpu.py --root . --seeds 0 1 --jobs 2 --out results/shared_qk_ablation_cpu

`--variants` trains only the named ones (default: all).

`--root`: the folder `make reproduce-table PROFILE=cpu` ran in (its prepared GCIDE data). Runs go to
`<root>/outputs/investigations/shared_qk/<variant>@s<seed>` and resume where they stopped; a
finished one is not trained again. The baselines `regular` and `shared-qk` are Figure 3's committed
records (`--records`, default results/runs/cpu/fig3). Writes OUT/<variant>@s<seed>.json (the
run's final numbers and validation curve, as a record), OUT.table.md (the table and the hypotheses'
verdicts, decided like the results pages' claims: reformer_cli/table/verdicts.py) and OUT.png.
`--table-only` rebuilds OUT.table.md and OUT.png from the records in OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reformer_cli.reproduce.curate import relative_paths, train_payload  # noqa: E402
from reformer_cli.reproduce.folders import train_completed  # noqa: E402
from reformer_cli.table.curves import curve, max_steps_of, paired_curve, seeds_text, verdict_line  # noqa: E402
from reformer_cli.table.verdicts import last_quarter_movement, mean, spread, verdict  # noqa: E402

VARIANTS = {"shared-qk-raw": ["attention.shared_qk_keys=raw"], "shared-qk-noself": ["attention.self_mask=false"],
            "shared-qk-raw-noself": ["attention.shared_qk_keys=raw", "attention.self_mask=false"]}
RUNS = ["regular", "shared-qk", *VARIANTS]
CHECKS = [
    {"claim": "the unit keys cost bits: shared QK with raw keys better than with unit keys",
     "run": "shared-qk-raw", "baseline": "shared-qk", "expect": "better"},
    {"claim": "the unit keys are the whole cost: shared QK with raw keys not worse than regular attention",
     "run": "shared-qk-raw", "baseline": "regular", "expect": "not_worse", "tolerance": 0.02},
    {"claim": "the self mask costs bits: shared QK without the self mask better than with it",
     "run": "shared-qk-noself", "baseline": "shared-qk", "expect": "better"},
    {"claim": "the self mask is the whole cost: shared QK without the self mask not worse than regular attention",
     "run": "shared-qk-noself", "baseline": "regular", "expect": "not_worse", "tolerance": 0.02},
    {"claim": "under raw keys the self mask costs bits: raw keys without the self mask better than with it",
     "run": "shared-qk-raw-noself", "baseline": "shared-qk-raw", "expect": "better"},
    {"claim": "the tying costs nothing: raw keys without the self mask not worse than regular attention",
     "run": "shared-qk-raw-noself", "baseline": "regular", "expect": "not_worse", "tolerance": 0.02},
]


def variant_command(baseline_command: str, variant: str, seed: int) -> list[str]:
    """The baseline's `reformer run` arguments with the variant's override, its seed and its folder."""
    words = shlex.split(baseline_command)
    if words[:2] != ["reformer", "run"]:
        raise SystemExit(f"error: not a training command: {baseline_command[:80]}")
    kept = [w for w in words[2:] if not w.startswith(("seed=", "hydra.run.dir=", "resume=", "trainer.progress="))]
    return [*kept, *VARIANTS[variant], f"seed={seed}",
            f"hydra.run.dir=outputs/investigations/shared_qk/{variant}@s{seed}", "resume=auto", "trainer.progress=plain"]


def train(root: Path, records: Path, out: Path, seeds: list[int], jobs: int, variants: list[str]) -> None:
    """Train the missing runs of `variants`, `jobs` at a time (one thread each), and write their records."""
    planned = []
    for seed in seeds:
        baseline = json.loads((records / f"shared-qk@s{seed}.json").read_text())
        for variant in variants:
            planned.append((variant, seed, variant_command(baseline["command"], variant, seed)))
    todo = list(planned)
    running: list[tuple[str, int, list[str], subprocess.Popen]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while todo or running:
        while todo and len(running) < jobs:
            variant, seed, args = todo.pop(0)
            if train_completed(root / f"outputs/investigations/shared_qk/{variant}@s{seed}"):
                print(f"{variant}@s{seed}: already trained", flush=True)
                continue
            print(f"{variant}@s{seed}: reformer run {' '.join(args)}", flush=True)
            log = (root / "outputs/investigations/shared_qk").joinpath(f"{variant}@s{seed}.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as stream:
                process = subprocess.Popen([sys.executable, "-m", "reformer_cli", "run", *args], cwd=root, env=env,
                                           stdout=stream, stderr=subprocess.STDOUT)
            running.append((variant, seed, args, process))
        if running:
            variant, seed, args, process = running.pop(0)
            if process.wait() != 0:
                raise SystemExit(f"error: {variant}@s{seed} failed (rc {process.returncode}); its log: "
                                 f"{root}/outputs/investigations/shared_qk/{variant}@s{seed}.log")
    out.mkdir(parents=True, exist_ok=True)
    for variant, seed, args in planned:
        record = {"run": variant, "seed": seed, "command": "reformer run " + " ".join(args),
                  **relative_paths(train_payload(root / f"outputs/investigations/shared_qk/{variant}@s{seed}"), root)}
        (out / f"{variant}@s{seed}.json").write_text(json.dumps(record, indent=1) + "\n")


def load(records: Path, out: Path) -> dict[str, dict[int, dict]]:
    """{run: {seed: record}}: the baselines from Figure 3's records, the variants from OUT."""
    found: dict[str, dict[int, dict]] = {run: {} for run in RUNS}
    for folder, runs in ((records, ["regular", "shared-qk"]), (out, list(VARIANTS))):
        for run in runs:
            for path in sorted(folder.glob(f"{run}@s*.json")):
                found[run][int(path.stem.rsplit("@s", 1)[1])] = json.loads(path.read_text())
    return found


def final(record: dict) -> float:
    return float(record["final"]["valid"]["bpc"])


def curves(runs: dict[int, dict]) -> dict[int, dict[int, float]]:
    """{seed: {step: bpc}} of a run's records."""
    return {s: curve(r, "bpc") for s, r in runs.items()}


def report(records: dict[str, dict[int, dict]]) -> str:
    lines = ["| run | parameters | final bits per character (512 validation windows) | per seed |", "|---|---|---|---|"]
    for run in RUNS:
        values = {s: final(r) for s, r in records[run].items()}
        if not values:
            lines.append(f"| {run} | - | missing | - |")
            continue
        params = {r["n_parameters"] for r in records[run].values()}
        lines.append(f"| {run} | {', '.join(f'{p:,}' for p in sorted(params))} | {mean(list(values.values())):.3f} "
                     f"± {spread(list(values.values())):.3f} {seeds_text(len(values))} | "
                     + ", ".join(f"s{s} {v:.3f}" for s, v in sorted(values.items())) + " |")
    lines += [""]
    for check in CHECKS:
        run, base = records[check["run"]], records[check["baseline"]]
        max_steps = max_steps_of([*run.values(), *base.values()])
        moved = last_quarter_movement(paired_curve(curves(run), curves(base)), max_steps) if max_steps else None
        v = verdict(check, {s: final(r) for s, r in run.items()}, {s: final(r) for s, r in base.items()}, "bpc",
                    moved=moved)
        lines.append("- " + verdict_line(v).removeprefix("Verdict: "))
    return "\n".join(lines) + "\n"


def plot(records: dict[str, dict[int, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 7.5), gridspec_kw={"height_ratios": [3, 2]}, sharex=True)
    fig.suptitle("Shared-QK attention: which part costs bits (cpu, GCIDE text, 512-byte windows)\n"
                 "mean over seeds of the periodic evaluations; not comparable to the paper", fontsize=10)
    markers, styles = "osD^v", ["-", "--", "-.", ":", (0, (5, 1, 1, 1))]
    for i, run in enumerate(RUNS):
        seeds = sorted(records[run])
        if not seeds:
            continue
        by_seed = curves(records[run])
        steps = sorted(set.intersection(*(set(c) for c in by_seed.values())))
        ys = [mean([by_seed[s][t] for s in seeds]) for t in steps]
        top.plot(steps, ys, color=f"C{i}", marker=markers[i], linestyle=styles[i], label=f"{run} {seeds_text(len(seeds))}")
        if run != "regular" and records["regular"]:
            difference = paired_curve(by_seed, curves(records["regular"]))
            bottom.plot(list(difference), list(difference.values()), color=f"C{i}", marker=markers[i],
                        linestyle=styles[i], label=f"{run} − regular")
    top.set_ylabel("held-out bits per character")
    bottom.set_ylabel("difference to regular\n(bits per character)")
    bottom.set_xlabel("training step")
    bottom.axhline(0.0, color="0.5", linewidth=0.8)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--records", type=Path, default=REPO / "results" / "runs" / "cpu" / "fig3")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table-only", action="store_true", help="rebuild OUT.table.md and OUT.png from OUT's records")
    args = parser.parse_args()
    if not args.table_only:
        train(args.root.resolve(), args.records, args.out, args.seeds, args.jobs, args.variants)
    records = load(args.records, args.out)
    text = report(records)
    Path(f"{args.out}.table.md").write_text(text)
    plot(records, Path(f"{args.out}.png"))
    print(text, end="")


if __name__ == "__main__":
    main()
