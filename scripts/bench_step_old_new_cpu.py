"""A training step with the old and the new reference LSH attention, timed side by side in one process.

    python scripts/bench_step_old_new_cpu.py --old <commit> [--repeats 5]

The step is `reformer bench step`'s (forward, backward, clipping, AdamW) of the Table 2 model at
the cpu profile's LSH-4 run (experiments/table2.yaml: batch 32, length 256, 4 rounds, chunks of 8,
fp32). The old attention is `reformer_cli/attention/lsh.py` as committed at `<commit>` (loaded as
scripts/bench_lsh_cpu.py does); the model's LSH core (attention/lsh_core.py) calls the old or the
new `hash_buckets` and `lsh_attention_from_buckets`, one model each, with the same weights and
batch; everything else in the step is this checkout's. Both steps are warmed up, then each repeat
times both once, the order alternating (bench/common.py, `time_interleaved`), so that a change of
the machine's load falls on both alike. Printed: median wall ms with min-max, old / new, and the
load average. Both steps share the process's malloc settings, so this compares the attention code
only: with `--keep-freed-memory` both keep freed memory as `reformer run` now does; the whole
step of an old commit against the new one is `reformer bench step` run from each checkout in turn.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's reformer_cli, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import reformer_cli.attention.lsh as new_lsh  # noqa: E402
import reformer_cli.attention.lsh_core as lsh_core  # noqa: E402
from bench_lsh_cpu import load_old  # noqa: E402
from reformer_cli.bench.common import time_interleaved  # noqa: E402
from reformer_cli.bench.step import prepare  # noqa: E402
from reformer_cli.runtime import keep_freed_cpu_memory  # noqa: E402

TABLE2_CPU_LSH4 = dict(d_model=256, d_ff=256, heads=4, layers=1, layer="standard", vocab=128, rounds=4, chunk=8,
                       batch=32, length=256, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, help="the commit whose lsh.py is the old implementation")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="both steps with malloc keeping freed memory, as reformer run and bench step"
                             " now run (runtime.keep_freed_cpu_memory); without it, both fault their pages in")
    args = parser.parse_args()
    kept = keep_freed_cpu_memory(torch.device("cpu")) if args.keep_freed_memory else False
    implementations = {"old": load_old(args.old), "new": new_lsh}
    current = {"module": new_lsh}
    # the core looks both names up at call time: route them to the module of the step being timed
    lsh_core.hash_buckets = lambda *a, **k: current["module"].hash_buckets(*a, **k)
    lsh_core.lsh_attention_from_buckets = lambda *a, **k: current["module"].lsh_attention_from_buckets(*a, **k)
    cpu = torch.device("cpu")
    fns = {}
    for name, module in implementations.items():
        step = prepare(argparse.Namespace(**TABLE2_CPU_LSH4), "lsh-reference", cpu, "fp32")

        def timed(step=step, module=module) -> None:
            current["module"] = module
            step()

        fns[name] = timed
    load_before = os.getloadavg()
    timings, failed = time_interleaved(fns, cpu, warmup=args.warmup, reps=args.repeats)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average before {load_before},"
          f" after {os.getloadavg()}; old = {args.old[:12]}:reformer_cli/attention/lsh.py, new = {new_lsh.__file__};"
          f" freed memory kept: {kept}")
    for name, timing in timings.items():
        print(f"{name}: {timing.text('.0f')} ms per step")
    if {"old", "new"} <= set(timings):
        print(f"old / new: {timings['old'].median / timings['new'].median:.2f}"
              f" (medians; min / min {timings['old'].low / timings['new'].low:.2f})")
    for name, exc in failed.items():
        print(f"{name}: failed: {exc}")


if __name__ == "__main__":
    main()
