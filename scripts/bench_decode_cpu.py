"""Tokens per second of cached decoding against decoding without a cache, on the CPU, in one run.

    python scripts/bench_decode_cpu.py [--lengths 1024,2048,4096,8192] [--steps 16] [--attention lsh|full]

Without a cache each new token costs the model's forward over the whole prefix (its trained
attention: LSH in chunks of 64 here); with one, it costs one query per layer against the stored
keys, values and buckets (reformer_cli/decoding). The model is random (speed does not depend on the
weights): 2 layers, d_model 256, d_ff 512, 4 heads, LSH with 2 rounds. At each length L the cache
is filled with L - steps positions, then `steps` tokens are timed one by one; the uncached side
times `repeats` forwards over L positions (the cost of the token at L). Both sides are timed in this
process one after the other, so the ratio is measured under the same load; the load average is
printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's reformer_cli


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="1024,2048,4096,8192")
    p.add_argument("--steps", type=int, default=16, help="cached tokens timed at each length")
    p.add_argument("--repeats", type=int, default=3, help="uncached forwards timed at each length")
    p.add_argument("--attention", default="lsh", choices=("lsh", "full"))
    args = p.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]

    import torch

    from reformer_cli.decoding.incremental import CachedDecoder
    from reformer_cli.hydra_entry import compose
    from reformer_cli.model.reformer import build_model
    from reformer_cli.primitives.context import ForwardContext

    cfg = compose("config", ["model.d_model=256", "model.d_ff=512", "model.n_heads=4", "model.n_layers=2",
                             f"attention={args.attention}", f"task.seq_len={max(lengths)}"]
                  + (["attention.chunk_length=64", "attention.n_rounds=2"] if args.attention == "lsh" else []))
    torch.manual_seed(0)
    model = build_model(cfg, 256, max(lengths)).eval()
    tokens = torch.randint(0, 256, (1, max(lengths)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f},"
          f" {platform.machine()}")
    print(f"model: 2 layers, d_model 256, 4 heads, attention {args.attention}"
          + (" (2 rounds, chunks of 64)" if args.attention == "lsh" else ""))
    print("| length | uncached tokens/s | cached tokens/s | cached / uncached |")
    print("|---|---|---|---|")
    with torch.no_grad():
        for length in lengths:
            uncached = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(tokens[:, :length], seed=0)
                uncached.append(time.perf_counter() - start)
            decoder = CachedDecoder(model, ctx=ForwardContext(seed=0), max_length=length)
            decoder.feed(tokens[:, : length - args.steps])
            start = time.perf_counter()
            for i in range(length - args.steps, length):
                decoder.feed(tokens[:, i : i + 1])
            cached = (time.perf_counter() - start) / args.steps
            slow = statistics.median(uncached)
            print(f"| {length:,} | {1 / slow:.1f} | {1 / cached:.1f} | {slow / cached:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
