"""`reformer bench <memory|speed|step|data> [options]`: each benchmark lives in reformer_cli/bench/
(`bench.BENCHMARKS`); this module picks one and hands it the rest of the command line."""

from __future__ import annotations

import sys


def main(args: list[str]) -> int:
    from ..bench import BENCHMARKS

    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write("usage: reformer bench <benchmark> [options]\n\nbenchmarks:\n")
        for name, (_, desc) in BENCHMARKS.items():
            sys.stdout.write(f"  {name:8s}{desc}\n")
        return 0
    if args[0] not in BENCHMARKS:
        sys.stderr.write(f"error: unknown benchmark '{args[0]}' (benchmarks: {', '.join(BENCHMARKS)})\n")
        return 2
    return int(BENCHMARKS[args[0]][0].main(args[1:]) or 0)
