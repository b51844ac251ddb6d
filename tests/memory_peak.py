"""The measured peak memory of one training step, next to `memory_estimate`'s estimate: a fresh
process builds `reformer run`'s Trainer for the overrides and takes one optimizer step (forward,
backward, Adam); its peak resident memory (VmHWM, the whole process: Python, torch, the data,
the model) is the number the estimate must not fall below. Used by tests/test_memory_estimate.py
and, as `python -m tests.memory_peak`, to measure the table in docs/runner.md ("Memory estimate")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEP = r"""
import json, os, sys, tempfile
from reformer_cli.config import validate
from reformer_cli.hydra_entry import compose
from reformer_cli.memory_estimate import PROCESS, estimate, memory_terms
from reformer_cli.train import Trainer

def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

cfg = compose("config", json.loads(sys.argv[1]))
validate(cfg)
need = estimate(memory_terms(cfg))
trainer = Trainer(cfg, tempfile.mkdtemp())
before = vm("VmRSS")
trainer.step(1)
print(json.dumps({"estimate": need, "process": PROCESS, "before_step": before, "peak": vm("VmHWM")}))
"""


def text_corpus(folder: Path, size: int = 400_000) -> Path:
    """A prepared text corpus of `size` bytes (enough for batches of 8 x 6,000) in `folder`:
    returns its path; REFORMER_DATA_DIR must be `folder / "data"` when it is used."""
    corpus = folder / "corpus.txt"
    if not corpus.exists():
        words = b"the quick brown fox jumps over the lazy dog while reformer hashes its queries. "
        corpus.write_bytes((words * (size // len(words) + 1))[:size])
        subprocess.run([sys.executable, "-m", "reformer_cli.cli", "data", "prepare", "task=text",
                        f"task.path={corpus}"], check=True, capture_output=True, cwd=folder,
                       env={**os.environ, "REFORMER_DATA_DIR": str(folder / "data"), "PYTHONPATH": str(ROOT)})
    return corpus


def measure_step(overrides: list[str], folder: Path) -> dict:
    """{'estimate', 'before_step', 'peak'} in bytes for one step of `reformer run <overrides>`,
    measured in a fresh process run in `folder` (one CPU thread)."""
    env = {**os.environ, "REFORMER_DATA_DIR": str(folder / "data"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", STEP, json.dumps(overrides)], capture_output=True, text=True,
                          cwd=folder, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(folder: Path, cases: list[tuple[str, list[str]]]) -> None:
    corpus = text_corpus(folder)
    print("| attention | seq_len | estimate GiB | before the step GiB | measured peak GiB | estimate / peak |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, overrides in cases:
        args = ["task=text", f"task.path={corpus}", "logger=none", *overrides]
        got = measure_step(args, folder)
        seq = next(o.split("=", 1)[1] for o in overrides if o.startswith("task.seq_len="))
        print(f"| {label} | {seq} | {got['estimate'] / 2**30:.2f} | {got['before_step'] / 2**30:.2f}"
              f" | {got['peak'] / 2**30:.2f}"
              f" | {got['estimate'] / got['peak']:.2f} |", flush=True)


if __name__ == "__main__":
    lengths = [int(n) for n in (sys.argv[2:] or ["1000", "2000", "4000"])]
    runs = []
    for attention in sys.argv[1].split(","):
        for n in lengths:
            name, _, chunk = attention.partition(":")
            extra = [f"attention.chunk_length={chunk}"] if chunk else []
            runs.append((attention, [f"attention={name}", f"task.seq_len={n}", *extra]))
    table(Path(os.environ.get("MEMORY_PEAK_DIR", "/tmp/memory_peak")), runs)
