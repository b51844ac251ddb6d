"""`reformer bench <memory|speed> [options]`: each benchmark lives in reformer_cli/bench/."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "memory": ("reformer_cli.bench.memory", "peak memory of one training step, standard vs reversible, over depths"),
    "speed": ("reformer_cli.bench.speed", "attention forward+backward time over lengths (SPEC section 6)"),
    "step": ("reformer_cli.bench.step", "one training step of the Table 2 model: LSH fast vs reference vs full"),
    "data": ("reformer_cli.bench.data", "training windows per second from a memory-mapped split (CPU)"),
}


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write("usage: reformer bench <benchmark> [options]\n\nbenchmarks:\n")
        for name, (_, desc) in BENCHMARKS.items():
            sys.stdout.write(f"  {name:8s}{desc}\n")
        return 0
    if args[0] not in BENCHMARKS:
        sys.stderr.write(f"error: unknown benchmark '{args[0]}' (benchmarks: {', '.join(BENCHMARKS)})\n")
        return 2
    return int(importlib.import_module(BENCHMARKS[args[0]][0]).main(args[1:]) or 0)
