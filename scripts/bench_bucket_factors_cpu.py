"""One bucket factor against two on the CPU: LSH hashing alone and the whole LSH attention (forward +
backward), the same bucket count hashed both ways, timed side by side in one process.

    python scripts/bench_bucket_factors_cpu.py [--lengths 1024,2048,4096,8192,16384] [--rounds 1,4]
        [--repeats 4,4,3,3,3]

At each length L: chunks of 64, the paper's count n = 2 L / 64 (what `attention.n_buckets: null`
gives), batch = 16,384 / L (about 16K tokens per batch), 4 heads of 64, causal, fp32, the paper's
semantics (the reference core `reformer bench speed` times: attention/lsh.py `lsh_attention`, the
defaults of LSHSettings). "single" hashes with one factor [n] (n / 2 projections per token and
round); "split" with `even_split(n)` (primitives/attention_settings.py: two even factors, as equal
as possible, the same n), (f1 + f2) / 2 projections. Per length and rounds, the four callables
(hash single, hash split, attention single, attention split) are warmed up, then every repeat calls
each once, the order rotating (bench/common.py, `time_interleaved`), so that a change of the
machine's load falls on all alike. Printed: medians in ms with min-max, and the ratio single / split
of the medians (above 1: the split is faster). Run it with OMP_NUM_THREADS=1: one thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's reformer_cli, not an installed one

import torch  # noqa: E402

from reformer_cli.attention.lsh import hash_buckets, lsh_attention  # noqa: E402
from reformer_cli.bench.common import comma_ints, time_interleaved  # noqa: E402
from reformer_cli.primitives.attention_settings import even_split  # noqa: E402

CHUNK, HEADS, D_HEAD, TOKENS = 64, 4, 64, 16384


def callables(length: int, rounds: int, factors: list[int], seed: int) -> dict[str, object]:
    """Hashing alone and the whole attention (forward + backward) with these bucket factors."""
    generator = torch.Generator().manual_seed(seed)
    shape = (max(1, TOKENS // length), HEADS, length, D_HEAD)
    qk = torch.randn(*shape, generator=generator).requires_grad_(True)
    v = torch.randn(*shape, generator=generator).requires_grad_(True)
    grad = torch.randn(*shape, generator=generator)
    rotations = [torch.randn(HEADS, D_HEAD, rounds, f // 2, generator=generator) for f in factors]

    def hashing() -> None:
        hash_buckets(qk, rotations)

    def attention() -> None:
        lsh_attention(qk, v, rotations, chunk_length=CHUNK, causal=True).backward(grad)
        qk.grad = v.grad = None

    return {"hash": hashing, "attention": attention}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=comma_ints, default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--rounds", type=comma_ints, default=[1, 4])
    parser.add_argument("--repeats", type=comma_ints, default=[4, 4, 3, 3, 3],
                        help="timed repeats per length (the last entry for any further length)")
    args = parser.parse_args()
    torch.manual_seed(0)
    started = time.time()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {platform.processor() or platform.machine()},"
          f" load average {os.getloadavg()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"chunks of {CHUNK}, {HEADS} heads of {D_HEAD}, batch x length = {TOKENS}, causal, fp32, forward + backward;"
          " ms median (min-max) over the repeats; ratio = single / split (medians)")
    print()
    print("| length | batch | rounds | buckets | split | hash single ms | hash split ms | hash ratio"
          " | attention single ms | attention split ms | attention ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for index, length in enumerate(args.lengths):
        reps = args.repeats[min(index, len(args.repeats) - 1)]
        count = 2 * max(1, length // CHUNK)
        split = even_split(count)
        for rounds in args.rounds:
            fns = {}
            for name, factors in (("single", [count]), ("split", split)):
                for part, fn in callables(length, rounds, factors, seed=length + rounds).items():
                    fns[f"{part} {name}"] = fn
            timings, failed = time_interleaved(fns, torch.device("cpu"), warmup=1, reps=reps)
            if failed:
                print(f"| {length} | failed: {failed} |")
                continue
            t = {name: timing for name, timing in timings.items()}

            def ms(name: str) -> str:
                return f"{t[name].median:.1f} ({t[name].low:.1f}-{t[name].high:.1f})"

            print(f"| {length} | {max(1, TOKENS // length)} | {rounds} | {count} | {'x'.join(map(str, split))}"
                  f" | {ms('hash single')} | {ms('hash split')} | {t['hash single'].median / t['hash split'].median:.2f}"
                  f" | {ms('attention single')} | {ms('attention split')}"
                  f" | {t['attention single'].median / t['attention split'].median:.2f} |", flush=True)
    print()
    print(f"load average {os.getloadavg()}, {time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()
