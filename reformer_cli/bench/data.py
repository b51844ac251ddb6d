"""`reformer bench data`: how fast the tasks cut training windows out of a memory-mapped split.

    reformer bench data                                   a temporary 90 MB split of random bytes
    reformer bench data --data-dir ~/.cache/reformer/enwik8   a prepared enwik8 / text folder
    reformer bench data --task imagenet64 --seq-len 12288 --batch-size 8

It times `task.train_batch` exactly as the trainer calls it (memmap opened, offsets drawn, windows
copied, converted to long tensors, shifted) on one CPU core, page cache warm, and prints windows/s
and MB/s: the median with min-max over `--repeats` timed rounds of `--seconds / repeats` each
(`--json PATH` writes them). A folder that holds no prepared data is a one-line error naming the
`reformer data prepare` command that prepares it. A GPU step of the paper's enwik8 model (8 x 65,536 tokens) takes well over 10 ms, so a
loader that makes thousands of windows per second keeps it fed without worker processes.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..config import validate_task
from ..data.files import StagedFile
from ..errors import UserError, report_and_exit
from ..data.manifest import build_manifest, write_manifest
from ..tasks import task_spec, task_specs


def fake_prepared(folder: Path, task: str, layout: dict) -> dict:
    """A prepared folder of random bytes in the real layout of `task` (its spec's `bench_splits`;
    benchmarks only, never for training)."""
    rng = np.random.default_rng(0)
    shape_tail = tuple(layout["shape_tail"])
    splits = {}
    for name, n in layout["sizes"].items():
        with StagedFile(folder / f"{name}{layout['suffix']}") as out:
            left = n
            while left:
                # small chunks: big temporary arrays would raise glibc's mmap/trim thresholds and
                # make the timed batches cheaper than in a fresh training process
                step = min(left, 64 << 10)
                out.write(rng.integers(0, 256, step, dtype=np.uint8).tobytes())
                left -= step
            out.commit()
        shape = [n // int(np.prod(shape_tail)), *shape_tail] if shape_tail else [n]
        splits[name] = {"file": out.path.name, "bytes": n, "shape": shape, "dtype": "uint8",
                        "sha256": out.sha256.hexdigest()}
    manifest = build_manifest(task, layout["variant"], layout["params"], {"origin": "random bytes (benchmark)",
                                                                          "verified": False,
                                                                          "checks_skipped": ["everything"]}, splits)
    write_manifest(folder, manifest)
    return manifest


def prepare_command(task_name: str, folder: Path) -> str:
    """The `reformer data prepare` command that makes `folder` what `--task task_name --data-dir folder` reads."""
    return task_spec(task_name).bench_prepare_hint(folder)


def build(task_name: str, folder: Path, seq_len: int):
    """The task reading the prepared `folder`, its config taken from the folder's manifest."""
    from omegaconf import OmegaConf

    from ..data.manifest import read_manifest
    from ..errors import DataError

    spec = task_spec(task_name)
    fix = f"prepare it with `{prepare_command(task_name, folder)}`"
    manifest = read_manifest(folder, fix=fix)
    if manifest is None or manifest["task"] != task_name:
        raise DataError(f"{folder} holds no prepared {task_name} data (no matching manifest.json); {fix}")
    cfg = OmegaConf.structured(spec.schema)
    cfg.seq_len, cfg.verify = seq_len, "size"
    spec.bench_config(cfg, folder, manifest)
    validate_task(cfg)
    task = spec.build(cfg, seed=0)
    task.check_data()
    return task


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(task, batch_size: int, seconds: float, repeats: int = 1) -> list[tuple[int, float]]:
    """(windows, seconds) of each of `repeats` timed rounds of `seconds / repeats`, after 3 untimed batches."""
    for step in range(3):  # warm the page cache and the allocator
        task.train_batch(step, batch_size)
    rounds, step = [], 3
    for _ in range(max(1, repeats)):
        windows, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / max(1, repeats):
            windows += task.train_batch(step, batch_size).size
            step += 1
        rounds.append((windows, time.perf_counter() - start))
    return rounds


def summary(rounds: list[tuple[int, float]], seq_len: int, batch_size: int) -> dict:
    """Windows/s per round: median, min and max; MB/s and ms per batch from the median."""
    rates = [w / t for w, t in rounds]
    median = statistics.median(rates)
    return {"windows_per_s": median, "windows_per_s_min": min(rates), "windows_per_s_max": max(rates),
            "repeats": len(rates), "mb_per_s": median * seq_len / 1e6, "ms_per_batch": 1e3 * batch_size / median,
            "windows": sum(w for w, _ in rounds), "seconds": sum(t for _, t in rounds)}


def main(args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="reformer bench data", description=__doc__.splitlines()[0])
    prepared = [spec for spec in task_specs() if spec.prepared]
    p.add_argument("--task", choices=[spec.name for spec in prepared], default=prepared[0].name)
    p.add_argument("--data-dir", type=Path, help="a prepared folder (default: a temporary one of random bytes)")
    lengths: dict[int, list[str]] = {}
    for spec in prepared:
        lengths.setdefault(task_spec(spec.bench_layout or spec.name).schema().seq_len, []).append(spec.name)
    p.add_argument("--seq-len", type=int, default=None,
                   help="default: " + ", ".join(f"{n} ({', '.join(names)})" for n, names in lengths.items()))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0, help="in all, split over the repeats (3)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (5)")
    p.add_argument("--size-mb", type=float, default=90.0, help="train split of the temporary folder")
    p.add_argument("--json", type=Path, default=None, help="write the record here")
    a = p.parse_args(args)
    if a.json is not None:  # before the measurement, which would otherwise be lost
        from ..records import check_writable

        try:
            check_writable(a.json)
        except UserError as exc:
            report_and_exit(str(exc))
    # a task that reads another's files the same way is timed on that task's layout (TaskSpec.bench_layout)
    layout = task_spec(task_spec(a.task).bench_layout or a.task)
    seq_len = a.seq_len or layout.schema().seq_len
    with tempfile.TemporaryDirectory(prefix="reformer-bench-data-") as tmp:
        name = a.task
        if a.data_dir is None:
            folder, name = Path(tmp), layout.name
            splits = layout.bench_splits(int(a.size_mb * 1e6))
            train = splits["sizes"]["train"]
            fake_prepared(folder, name, splits)
            where = f"temporary {train / 1e6:.0f} MB split of random bytes"
        else:
            folder = a.data_dir.expanduser()
            where = str(folder)
        try:
            task = build(name, folder, seq_len)
            result = summary(measure(task, a.batch_size, a.seconds, a.repeats), seq_len, a.batch_size)
        except UserError as exc:
            report_and_exit(str(exc))
    print(
        f"bench data: {a.task} train windows from np.memmap ({where}), seq_len {seq_len:,}, batch {a.batch_size}:"
        f" {result['windows_per_s']:,.0f} windows/s (min-max {result['windows_per_s_min']:,.0f}-"
        f"{result['windows_per_s_max']:,.0f} over {result['repeats']} repeats), {result['mb_per_s']:,.0f} MB/s,"
        f" {result['ms_per_batch']:.2f} ms per batch"
        f" (1 process, page cache warm; {cpu_name()}, Python {platform.python_version()})"
    )
    if a.json is not None:
        from ..records import write_json_atomic

        write_json_atomic(a.json, {"kind": "data", "task": a.task, "where": where, "seq_len": seq_len,
                                   "batch_size": a.batch_size, "cpu": cpu_name(),
                                   "command": "reformer bench data " + " ".join(shlex.quote(x) for x in args),
                                   **result})
    return 0
