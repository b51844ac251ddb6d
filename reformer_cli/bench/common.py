"""What the benchmarks share: device choice, a median timer, peak memory of one call, OOM as a
result, the record header (device, date, versions, command) and the command-line pieces
(comma-separated integers, `main`; the one-line parser comes from errors.py).

Nothing here imports hydra, omegaconf or wandb: the benchmarks run on a GPU machine that has only
torch (and triton) installed.
"""

from __future__ import annotations

import argparse
import gc
import platform
import shlex
import statistics
import time
from datetime import datetime, timezone
from typing import Any, Callable

import torch

from ..errors import UserError, report_and_exit
from ..runtime import device_name

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when present, else the CPU. An explicit CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} but no CUDA device is available")
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], Any], device: torch.device, *, warmup: int = 3, reps: int = 10,
            grad_to_none: list[torch.Tensor] | None = None) -> float:
    """Median milliseconds of `fn()`, warm-up calls excluded.

    On CUDA: `triton.testing.do_bench` (CUDA events, L2 flushed before each call, `warmup` and
    `reps` read as its milliseconds budgets of 25 and 100 unless more are given); elsewhere a
    perf_counter loop of `reps` timed calls."""
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=max(25, warmup), rep=max(100, reps),
                                             grad_to_none=grad_to_none, return_mode="median"))
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if grad_to_none:
            for t in grad_to_none:
                t.grad = None
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_bytes(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Bytes allocated at the peak of one `fn()` beyond what was allocated before it (CUDA only):
    activations, saved tensors, workspaces and gradients, not the inputs."""
    if device.type != "cuda":
        return None
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def versions() -> dict[str, str | None]:
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {"torch": torch.__version__, "triton": triton_version, "python": platform.python_version()}


def header(device: torch.device, prog: str, argv: list[str]) -> dict[str, Any]:
    """The fields every benchmark record starts with."""
    from ..records import code_version

    return {
        "device": device_name(device),
        "device_type": device.type,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "time": datetime.now(timezone.utc).strftime("%H:%M UTC"),
        **versions(),
        "code_version": code_version(),
        "command": f"{prog} " + " ".join(shlex.quote(a) for a in argv),
    }


def format_rate(x: float | None) -> str:
    """Tokens per second as 12.3M / 45.6k."""
    if x is None:
        return "-"
    return f"{x / 1e6:,.1f}M" if x >= 1e5 else f"{x / 1e3:,.1f}k"


def plain_table(header_row: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header_row)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header_row, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if i > 0 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines)


def markdown_table(header_row: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header_row) + " |", "|" + "|".join("---" for _ in header_row) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


# ------------------------------------------------------------------------------ command line


def comma_ints(text: str) -> list[int]:
    """argparse type: comma-separated positive integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def run_main(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace, list[str]], Any],
             argv: list[str]) -> int:
    """Parse `argv`, call `run(args, argv)`, and report a UserError as one line."""
    args = parser.parse_args(argv)
    try:
        run(args, argv)
    except UserError as exc:
        report_and_exit(str(exc))
    return 0
