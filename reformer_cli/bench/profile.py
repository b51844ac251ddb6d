"""`reformer bench profile`: where the time of one LSH attention forward + backward goes, stage by
stage (hashing, sorting, attention, the merge of rounds, the backward), read from the kernels the
PyTorch profiler sees.

The speed benchmark says how long LSH attention takes; this says which kernels take it, so that work
on the fast path starts where the time is. Each (length, rounds, semantics) of the standard
problem (bench/speed.py) is run a few times under `torch.profiler`; every kernel's device time is
summed, divided by the number of profiled calls and assigned to a stage by its name (`STAGES`;
what matches none is `other`: copies, fills, elementwise work). It prints, for each profile, the
`--top` largest ops or kernels by self time (on a CPU: self CPU time of each aten op, from
`key_averages`), with their share of the total, and the stage breakdown only for the profiles
where stages were recognised (the stage names are the fast path's CUDA kernels; the CPU reference's
ops are all `other`). Writes `profile.md` and `profile.json` into `--out`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

import torch

from ..errors import OneLineParser
from ..records import write_json_atomic, write_text_atomic
from .common import comma_ints, header, markdown_table, plain_table, resolve_device, run_main, synchronize
from .speed import CPU_DEFAULTS, DTYPES, GPU_DEFAULTS, SEMANTICS, Problem, resolve_impl

PROG = "reformer bench profile"
# stage -> substrings of kernel / op names (lower case), first match wins
STAGES = [
    ("hash", ("hash_kernel", "hash_buckets", "argmax")),
    ("sort", ("sort",)),
    ("attention forward", ("lsh_forward_kernel",)),
    ("merge rounds", ("merge_rounds_kernel",)),
    ("backward", ("lsh_backward_kernel", "output_dot_grad_kernel")),
]


def stage_of(name: str) -> str:
    lowered = name.lower()
    for stage, needles in STAGES:
        if any(n in lowered for n in needles):
            return stage
    return "other"


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler library's own start / stop lines, written below
    Python); an exception still propagates and is reported after it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def recognised(profile: dict) -> bool:
    """Whether any of the profile's time was assigned to a named stage (not all `other`)."""
    return any(ms > 0 for stage, ms in profile["stages_ms"].items() if stage != "other")


def profile_one(problem: Problem, length: int, rounds: int, impl: str, semantics: str, calls: int,
                top_n: int = 15) -> dict:
    """Kernel times of `calls` forward + backward passes of LSH attention, per call."""
    from torch.profiler import ProfilerActivity, profile

    if impl == "fast":
        from ..attention.fast import lsh_attention
    else:
        from ..attention.lsh import lsh_attention
    _, keywords, about = SEMANTICS[semantics]
    b = problem.batch(length)
    shape = (b, problem.heads, length, problem.d_head)
    qk, v = problem.randn(*shape), problem.randn(*shape)
    grad = torch.randn(*shape, device=problem.device, dtype=problem.torch_dtype)
    rotations = [torch.randn(problem.heads, problem.d_head, rounds, f // 2, device=problem.device)
                 for f in problem.factors(length)]

    def step() -> None:
        lsh_attention(qk, v, rotations, chunk_length=problem.chunk, causal=problem.causal, **keywords).backward(grad)

    step()  # compilation and first-call work stay outside the profile
    synchronize(problem.device)
    cuda = problem.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with quiet_stderr(), profile(activities=activities) as prof:
        for _ in range(calls):
            step()
        synchronize(problem.device)
    kernels: dict[str, list[float]] = {}
    for event in prof.key_averages():
        if cuda:
            ms = getattr(event, "self_device_time_total", getattr(event, "self_cuda_time_total", 0.0)) / 1e3
        else:
            ms = event.self_cpu_time_total / 1e3
        if ms > 0:
            kernels[event.key] = [ms / calls, event.count / calls]
    stages: dict[str, float] = {}
    for name, (ms, _) in kernels.items():
        stages[stage_of(name)] = stages.get(stage_of(name), 0.0) + ms
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:top_n]
    total = sum(stages.values())
    return {
        "length": length, "batch": b, "rounds": rounds, "semantics": semantics, "about": about, "impl": impl,
        "clock": "device (CUDA kernels)" if cuda else "CPU (ops, self time)",
        "total_ms": sum(stages.values()),
        "stages_ms": {stage: stages.get(stage, 0.0) for stage in [s for s, _ in STAGES] + ["other"]},
        "top_kernels": [{"name": name[:120], "ms": ms, "calls": calls_, "share": ms / total if total else 0.0}
                        for name, (ms, calls_) in top],
    }


def top_table(profile: dict) -> tuple[list[str], list[list[str]]]:
    """The largest ops (kernels on CUDA) by self time: ms per call, % of the total, calls per call."""
    head = ["op (self time)", "ms per call", "% of total", "calls per call"]
    body = [[k["name"][:60], f"{k['ms']:.3f}", f"{100 * k['share']:.1f}", f"{k['calls']:g}"]
            for k in profile["top_kernels"]]
    return head, body


def stage_table(profiles: list[dict]) -> tuple[list[str], list[list[str]]]:
    """ms per stage, only the stages some profile recognised, then `other`."""
    stages = [s for s, _ in STAGES if any(p["stages_ms"][s] > 0 for p in profiles)] + ["other"]
    head = ["length", "rounds", "semantics", "total ms", *stages]
    body = [[f"{p['length']:,}", str(p["rounds"]), p["semantics"], f"{p['total_ms']:.3f}",
             *(f"{p['stages_ms'][s]:.3f}" for s in stages)] for p in profiles]
    return head, body


def title(p: dict) -> str:
    return f"length {p['length']:,}, {p['rounds']} rounds, {p['semantics']} ({p['about']}): {p['total_ms']:.3f} ms"


def markdown(record: dict) -> str:
    staged = [p for p in record["profiles"] if recognised(p)]
    lines = [
        "# Where LSH attention's time goes (forward + backward, per call)",
        "",
        f"- device: {record['device']}; date: {record['date']} {record.get('time', '')}".rstrip(),
        f"- torch {record['torch']}, triton {record['triton']}; command: `{record['command']}`",
        f"- problem: {record['tokens']:,} tokens per batch, {record['heads']} heads x {record['d_head']},"
        f" {record['dtype']}, chunk {record['chunk_length']}, {'causal' if record['causal'] else 'not causal'};"
        f" impl {record['impl']}; {record['calls']} profiled calls after one unprofiled",
        "",
        "Milliseconds per forward + backward (clock: "
        f"{record['profiles'][0]['clock'] if record['profiles'] else '-'}), self time of each op or kernel.",
    ]
    if staged:
        head, body = stage_table(staged)
        lines += ["", "Summed by stage (read from kernel names; `other` is copies, fills and elementwise work):", "",
                  *markdown_table(head, body)]
    else:
        lines += ["", "No stage was recognised (the stages are the fast path's CUDA kernels): the ops below are"
                  " the breakdown."]
    for p in record["profiles"]:
        head, body = top_table(p)
        lines += ["", f"## {title(p)}: the largest ops", ""]
        lines += markdown_table(head, [[f"`{row[0]}`", *row[1:]] for row in body])
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description="Per-stage kernel times of LSH attention forward + backward"
                      " (hashing, sorting, attention, merge, backward), from the PyTorch profiler.")
    p.add_argument("--lengths", type=comma_ints, default=None, help="(4096,65536 on CUDA)")
    p.add_argument("--rounds", type=comma_ints, default=None, help="(1,4 on CUDA)")
    p.add_argument("--semantics", default=None, help="paper and/or across, comma-separated (both on CUDA)")
    p.add_argument("--tokens", type=int, default=None, help="tokens per batch (65536 on CUDA)")
    p.add_argument("--chunk", type=int, default=None, help="LSH chunk length (64)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="(bf16; fp32 on a CPU)")
    p.add_argument("--impl", choices=("auto", "fast", "reference"), default="auto")
    p.add_argument("--calls", type=int, default=3, help="profiled calls (3)")
    p.add_argument("--top", type=int, default=15, help="the largest ops to show per profile (15)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="write profile.md and profile.json here")
    return p


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    defaults = GPU_DEFAULTS if cuda else CPU_DEFAULTS
    semantics = (args.semantics or ("paper,across" if cuda else "paper")).split(",")
    unknown = [s for s in semantics if s not in SEMANTICS]
    if unknown:
        from ..errors import UserError

        raise UserError(f"--semantics: {', '.join(unknown)} (expected paper and/or across)")
    problem = Problem(tokens=args.tokens or defaults["tokens"], heads=defaults["heads"], d_head=defaults["d_head"],
                      chunk=args.chunk or defaults["chunk"], dtype=args.dtype or defaults["dtype"], causal=True,
                      device=device, buckets="auto")
    lengths = args.lengths or ([4096, 65536] if cuda else [256])
    rounds = args.rounds or ([1, 4] if cuda else [1, 2])
    impl = resolve_impl(args.impl, device)
    profiles = []
    for length in lengths:
        for r in rounds:
            for sem in semantics:
                p = profile_one(problem, length, r, impl, sem, max(1, args.calls), max(1, args.top))
                profiles.append(p)
                sys.stderr.write(f"length {length:>6} rounds {r} {sem:<6} {p['total_ms']:9.3f} ms\n")
    record = {"kind": "lsh_profile", **header(device, PROG, argv), "tokens": problem.tokens, "heads": problem.heads,
              "d_head": problem.d_head, "dtype": problem.dtype, "chunk_length": problem.chunk, "causal": True,
              "impl": impl, "calls": max(1, args.calls), "profiles": profiles}
    for p in profiles:
        sys.stdout.write(f"\n{title(p)}\n" + plain_table(*top_table(p)) + "\n")
    staged = [p for p in profiles if recognised(p)]
    if staged:
        sys.stdout.write("\nby stage (ms per call):\n" + plain_table(*stage_table(staged)) + "\n")
    else:
        sys.stdout.write("\nno stage recognised (the stages are the fast path's CUDA kernels): the ops above are"
                         " the breakdown\n")
    if args.out is not None:
        write_text_atomic(args.out / "profile.md", markdown(record))
        write_json_atomic(args.out / "profile.json", record)
    return record


def main(argv: list[str]) -> int:
    return run_main(parser(), run, argv)
