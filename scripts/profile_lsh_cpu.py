"""Top operators of the reference LSH attention, forward + backward, on the CPU (torch.profiler).

    python scripts/profile_lsh_cpu.py [--rows 15]

Shapes: (a) the Table 2 cpu LSH-4 attention: batch 32, length 256, 4 heads of 64, chunk 8,
4 rounds; (b) length 4,096, chunk 64, 4 rounds (batch 1). Paper semantics (the defaults).
"""

from __future__ import annotations

import argparse

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's reformer_cli, not an installed one

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from reformer_cli.attention.lsh import lsh_attention, rotations_shape  # noqa: E402

SHAPES = {"table2-cpu L256 c8": (32, 256, 8), "L4096 c64": (1, 4096, 64)}


def run_once(batch: int, length: int, chunk: int, rounds: int = 4, heads: int = 4, d_head: int = 64) -> None:
    gen = torch.Generator().manual_seed(0)
    qk = torch.randn(batch, heads, length, d_head, generator=gen, requires_grad=True)
    v = torch.randn(batch, heads, length, d_head, generator=gen, requires_grad=True)
    rot = torch.randn(rotations_shape(heads, d_head, rounds, 2 * length // chunk), generator=gen)
    lsh_attention(qk, v, rot, chunk_length=chunk).square().sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    for name, shape in SHAPES.items():
        run_once(*shape)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_once(*shape)
        print(f"== {name} (batch, length, chunk) = {shape}, 4 rounds, 4 heads of 64")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows,
                                        max_name_column_width=40))


if __name__ == "__main__":
    main()
