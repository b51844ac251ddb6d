"""What the benchmarks share: device choice, an interleaving timer (median, min-max, repeats), peak memory of one call, OOM as a
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
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import torch

from ..errors import UserError, report_and_exit
from ..runtime import device_name, select_device
from ..text import markdown_table  # noqa: F401  (the benchmarks take it from here)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_device(name: str) -> torch.device:
    """The device of a bench's `--device` flag (runtime.select_device: auto is CUDA when present,
    else the CPU; an explicit device must exist)."""
    return select_device(name, "--device")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], Any], device: torch.device, *, warmup: int = 3, reps: int = 10,
            grad_to_none: list[torch.Tensor] | None = None) -> float:
    """Median milliseconds of `fn()`, warm-up calls excluded (one callable; `time_interleaved`
    for several that are compared)."""
    timings, failed = time_interleaved({"fn": fn}, device, warmup=warmup, reps=reps,
                                       before_each=(lambda: clear_grads(grad_to_none)) if grad_to_none else None)
    if failed:
        raise failed["fn"]
    return timings["fn"].median


def clear_grads(tensors: list[torch.Tensor] | None) -> None:
    """Drop the gradients the last backward left on `tensors` (so that none accumulate)."""
    for t in tensors or ():
        t.grad = None


@dataclass
class Timing:
    """Milliseconds of one callable over `repeats` timed calls: median, min and max."""

    median: float
    low: float
    high: float
    repeats: int

    @classmethod
    def of(cls, times: list[float]) -> "Timing":
        return cls(statistics.median(times), min(times), max(times), len(times))

    @property
    def spread(self) -> float:
        return self.high - self.low

    def text(self, spec: str = ".3f") -> str:
        """'12.345 (11.9-13.0, n=10)'."""
        return f"{self.median:{spec}} ({self.low:{spec}}-{self.high:{spec}}, n={self.repeats})"


class _Clock:
    """perf_counter on a CPU; CUDA events (L2 flushed before each call, as do_bench) on a GPU."""

    def __init__(self, device: torch.device, clock: Callable[[], float] = time.perf_counter):
        self.device, self.clock = device, clock
        self.cuda = device.type == "cuda"
        self._flush = torch.empty(256 << 20, dtype=torch.int8, device=device) if self.cuda else None

    def time(self, fn: Callable[[], Any]) -> float:
        if not self.cuda:
            start = self.clock()
            fn()
            return (self.clock() - start) * 1e3
        self._flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)


def time_interleaved(fns: dict[str, Callable[[], Any]], device: torch.device, *, warmup: int = 3,
                     reps: int = 10, before_each: Callable[[], None] | None = None,
                     clock: Callable[[], float] = time.perf_counter,
                     ) -> tuple[dict[str, Timing], dict[str, BaseException]]:
    """Time several callables against each other: each is warmed up (`warmup` calls, at least one:
    first-call allocation, lazy initialisation and compilation stay out), then every repeat calls
    each once, the order rotating from repeat to repeat, so that a change of machine load falls on
    all of them alike rather than on whichever was timed last.

    Returns (name -> Timing, name -> the exception of a callable that raised; it is dropped from
    the remaining repeats). `before_each` runs before every call, outside the timing."""
    live = dict(fns)
    failed: dict[str, BaseException] = {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    timer = _Clock(device, clock)

    def call(name: str, timed: bool) -> None:
        try:
            if before_each is not None:
                before_each()
            if timed:
                times[name].append(timer.time(live[name]))
            else:
                live[name]()
                synchronize(device)
        except Exception as exc:  # noqa: BLE001 (the caller decides what a failure means)
            failed[name] = exc
            del live[name]

    for _ in range(max(1, warmup)):
        for name in list(live):
            call(name, timed=False)
    for rep in range(max(1, reps)):
        names = list(live)
        shift = rep % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            call(name, timed=True)
    return {name: Timing.of(times[name]) for name in live}, failed


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


def check_outputs(args: argparse.Namespace) -> None:
    """UserError (one line) when a file a benchmark writes at the end (`--json`, `--markdown`)
    cannot be written there: checked before the measurements, which would otherwise be lost."""
    from ..records import check_writable

    for name in ("json", "markdown"):
        path = getattr(args, name, None)
        if path is not None:
            check_writable(path)


def run_main(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace, list[str]], Any],
             argv: list[str]) -> int:
    """Parse `argv`, call `run(args, argv)`, and report a UserError as one line."""
    args = parser.parse_args(argv)
    try:
        check_outputs(args)
        run(args, argv)
    except UserError as exc:
        report_and_exit(str(exc))
    return 0
