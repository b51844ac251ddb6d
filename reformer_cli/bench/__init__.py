"""`reformer bench <name>`: one module per benchmark, each with `parser()` and `main(argv)`, sharing
bench/common.py. They run on a GPU machine that has only torch and triton (no Hydra)."""

from types import ModuleType

from . import data, memory, profile, speed, step

# `reformer bench <name>` -> (the benchmark's module, one-line description)
BENCHMARKS: dict[str, tuple[ModuleType, str]] = {
    "memory": (memory, "peak memory of one training step, standard vs reversible, over depths"),
    "speed": (speed, "attention forward+backward time over lengths (docs/performance.md, 'The benchmark problem')"),
    "profile": (profile, "where LSH attention's time goes: kernel time per stage (hash, sort, attend, merge, backward)"),
    "step": (step, "one training step of the Table 2 model: LSH fast vs reference vs full"),
    "data": (data, "training windows per second from a memory-mapped split (CPU)"),
}
