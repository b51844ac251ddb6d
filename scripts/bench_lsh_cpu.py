"""Old against new reference LSH attention on the CPU, forward + backward, timed side by side.

    python scripts/bench_lsh_cpu.py --old <commit> [--repeats 7] [--only table2]

The old implementation is `reformer_cli/attention/lsh.py` as committed at `<commit>` (read with
`git show`, loaded as a module of this package so that its relative imports resolve); the new
one is the working tree's. Every repeat times both (and the peers' semantics, attention across
buckets without the duplicate correction, with the new code) once each, in alternating order, in
this one process; the table gives the median over repeats of the per-repeat ratio old / new, its
min-max, and median seconds. Shapes: (a) the Table 2 cpu LSH-4 attention (batch 32, length 256,
chunk 8, 4 heads of 64, 4 rounds); (b) lengths 1,024 and 4,096, chunk 64, batch 1, 4 heads of 64,
rounds 1, 2, 4, 8. Semantics: the paper's (the defaults: same-bucket rule, duplicate correction,
causal, no wrap-around). Ratios measured interleaved stay meaningful on a loaded machine; the load
average is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time

from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's reformer_cli, not an installed one

import torch  # noqa: E402

import reformer_cli.attention.lsh as new_lsh  # noqa: E402
from reformer_cli.attention.lsh import rotations_shape  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PATH = "reformer_cli/attention/lsh.py"


def load_old(commit: str):
    """`reformer_cli/attention/lsh.py` at `commit`, as the module `reformer_cli.attention._lsh_old`."""
    source = subprocess.run(["git", "show", f"{commit}:{PATH}"], check=True, capture_output=True, text=True,
                            cwd=ROOT).stdout
    spec = importlib.util.spec_from_loader("reformer_cli.attention._lsh_old", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "reformer_cli.attention"
    exec(compile(source, f"{commit[:12]}:{PATH}", "exec"), module.__dict__)
    return module


def shapes(only: str | None):
    """(label, batch, length, chunk, rounds)."""
    table2 = [("table2-cpu", 32, 256, 8, 4)]
    long = [(f"L{n}", 1, n, 64, r) for n in (1024, 4096) for r in (1, 2, 4, 8)]
    return {"table2": table2, "long": long}.get(only, table2 + long)


def step(module, qk, v, rot, chunk, **semantics) -> float:
    """Seconds of one forward + backward."""
    start = time.perf_counter()
    module.lsh_attention(qk, v, rot, chunk_length=chunk, **semantics).square().sum().backward()
    elapsed = time.perf_counter() - start
    qk.grad = v.grad = None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, help="the commit whose lsh.py is the old implementation")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", choices=["table2", "long"])
    args = parser.parse_args()
    old = load_old(args.old)
    peer = dict(attend_across_buckets=True, dedup=False)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    print(f"old = {args.old[:12]}:{PATH}; new = {new_lsh.__file__}; fp32, fwd+bwd, {args.repeats} repeats")
    print("| shape | batch | length | chunk | rounds | old/new median (min-max) | new paper / new peers median"
          " (min-max) | old s | new s | peers s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, batch, length, chunk, rounds in shapes(args.only):
        gen = torch.Generator().manual_seed(0)
        qk = torch.randn(batch, 4, length, 64, generator=gen, requires_grad=True)
        v = torch.randn(batch, 4, length, 64, generator=gen, requires_grad=True)
        rot = torch.randn(rotations_shape(4, 64, rounds, 2 * length // chunk), generator=gen)
        runs = {"old": lambda: step(old, qk, v, rot, chunk), "new": lambda: step(new_lsh, qk, v, rot, chunk),
                "peer": lambda: step(new_lsh, qk, v, rot, chunk, **peer)}
        for run in runs.values():
            run()  # warm-up
        times = {name: [] for name in runs}
        for repeat in range(args.repeats):
            order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
            for name in order:
                times[name].append(runs[name]())
        speedup = [o / n for o, n in zip(times["old"], times["new"])]
        paper_cost = [n / p for n, p in zip(times["new"], times["peer"])]
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"| {label} | {batch} | {length} | {chunk} | {rounds} | {statistics.median(speedup):.2f}"
              f" ({min(speedup):.2f}-{max(speedup):.2f}) | {statistics.median(paper_cost):.2f}"
              f" ({min(paper_cost):.2f}-{max(paper_cost):.2f}) | {med['old']:.4f} | {med['new']:.4f}"
              f" | {med['peer']:.4f} |", flush=True)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
