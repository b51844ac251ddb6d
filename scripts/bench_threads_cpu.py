"""One training step on the CPU with 1 and with 2 torch threads, timed side by side in one process.

    python scripts/bench_threads_cpu.py [--repeats 4] [--threads 1,2]

Models: `tiny` (conf/model/tiny.yaml: d_model 64, d_ff 128, 2 heads, 2 layers) and `table2`
(conf/model/table2.yaml: d_model = d_ff = 256, 4 heads, 1 layer), both at the Table 2 cpu
profile's LSH-4 run (batch 32, length 256, 4 rounds, chunks of 8, fp32, reference LSH), a step as
`reformer bench step` times it (forward, backward, clipping, AdamW). Every (model, threads) pair
is warmed up, then each repeat times every pair once, the order rotating (bench/common.py,
`time_interleaved`), so that a change of the machine's load falls on all alike. Printed: median
wall ms with min-max, the process CPU seconds per step (above the wall time: the threads ran in
parallel), the ratio 1 thread / n threads, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's reformer_cli, not an installed one

import torch  # noqa: E402

from reformer_cli.bench.common import comma_ints, time_interleaved  # noqa: E402
from reformer_cli.bench.step import prepare  # noqa: E402

MODELS = {"tiny": dict(d_model=64, d_ff=128, heads=2, layers=2), "table2": dict(d_model=256, d_ff=256, heads=4, layers=1)}


def step_args(model: str) -> argparse.Namespace:
    return argparse.Namespace(**MODELS[model], layer="standard", vocab=128, rounds=4, chunk=8, batch=32, length=256,
                              seed=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=comma_ints, default=[1, 2])
    parser.add_argument("--models", default="tiny,table2")
    args = parser.parse_args()
    cpu = torch.device("cpu")
    load_before = os.getloadavg()
    cpu_seconds: dict[str, list[float]] = {}
    fns = {}
    for model in args.models.split(","):
        step = prepare(step_args(model), "lsh-reference", cpu, "fp32")
        for threads in args.threads:
            name = f"{model} x{threads}"
            cpu_seconds[name] = []

            def timed(step=step, threads=threads, name=name) -> None:
                torch.set_num_threads(threads)
                start = time.process_time()
                step()
                cpu_seconds[name].append(time.process_time() - start)

            fns[name] = timed
    timings, failed = time_interleaved(fns, cpu, warmup=args.warmup, reps=args.repeats)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average before {load_before},"
          f" after {os.getloadavg()}; {args.repeats} interleaved repeats after {args.warmup} warm-up")
    print("| model | threads | wall ms median (min-max) | CPU s per step (median) | 1 thread / this |")
    print("|---|---|---|---|---|")
    for name, timing in timings.items():
        model, threads = name.split(" x")
        one = timings.get(f"{model} x{args.threads[0]}")
        timed_cpu = sorted(cpu_seconds[name][max(1, args.warmup):])  # time_interleaved warms up at least once
        print(f"| {model} | {threads} | {timing.text('.0f')} | {timed_cpu[len(timed_cpu) // 2]:.2f} |"
              f" {one.median / timing.median:.2f} |")
    for name, exc in failed.items():
        print(f"{name}: failed: {exc}")


if __name__ == "__main__":
    main()
