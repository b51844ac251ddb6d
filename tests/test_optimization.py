"""The learning-rate schedules (optimization.py) and the run's CPU settings (runtime.py)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from reformer_cli.optimization import lr_at

from .conftest import cli_env, compose


def trainer(**kw):
    cfg = compose([f"trainer.{k}={v}" for k, v in kw.items()])
    return cfg.trainer


def test_rsqrt_is_trax_multifactor_with_peak_lr():
    t = trainer(lr=0.01, warmup_steps=100, schedule="rsqrt")
    constant = 0.01 * math.sqrt(100)  # trax's 'constant' for the same curve
    for step in (1, 50, 100, 400, 10_000):
        trax = constant * min(1.0, step / 100) / math.sqrt(max(step, 100))
        assert lr_at(step, t) == pytest.approx(trax)
    assert lr_at(100, t) == pytest.approx(0.01)


def test_constant_and_cosine():
    t = trainer(lr=0.5, warmup_steps=10, schedule="constant")
    assert lr_at(5, t) == pytest.approx(0.25) and lr_at(500, t) == pytest.approx(0.5)
    t = trainer(lr=0.5, warmup_steps=10, schedule="cosine", max_steps=110)
    assert lr_at(10, t) == pytest.approx(0.5) and lr_at(60, t) == pytest.approx(0.25) and lr_at(110, t) == pytest.approx(0.0)


def test_the_default_warmup_is_a_tenth_of_the_steps():
    """A run of any length leaves its warmup: `trainer.max_steps=300` warms up for 30 steps."""
    from reformer_cli.optimization import warmup_of

    assert trainer().warmup_steps is None and warmup_of(trainer()) == trainer().max_steps // 10
    t = trainer(max_steps=300)
    assert warmup_of(t) == 30 and lr_at(30, t) == pytest.approx(t.lr) and lr_at(15, t) == pytest.approx(t.lr / 2)
    assert warmup_of(trainer(max_steps=300, warmup_steps=0)) == 0 and lr_at(1, trainer(warmup_steps=0)) == trainer().lr


def test_a_small_cpu_run_uses_one_thread_unless_told_otherwise(monkeypatch):
    import torch

    from reformer_cli.runtime import SMALL_STEP_VALUES, small_model_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert small_model_threads(torch.device("cpu"), 1000) is None and torch.get_num_threads() == 2  # the user's
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert small_model_threads(torch.device("cpu"), SMALL_STEP_VALUES) is None  # not small
        assert small_model_threads(torch.device("cpu"), 8 * 32 * 64) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


FAULTS_OF_REPEATED_ALLOCATIONS = """
import resource, sys, torch
from reformer_cli.runtime import keep_freed_cpu_memory

def faults(steps):  # minor page faults of allocating, filling and freeing 64 MiB, `steps` times
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        torch.ones(2**24)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults(4)
assert not keep_freed_cpu_memory(torch.device("meta"))
kept = keep_freed_cpu_memory(torch.device("cpu"))
faults(16)  # the heap grows until freed blocks fit the next ones (glibc: a few steps)
print(kept, default, faults(4))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_a_cpu_run_reuses_freed_memory_instead_of_faulting_in_fresh_pages():
    """keep_freed_cpu_memory: after it, a big tensor allocated again and again reuses the same pages
    (glibc otherwise maps and faults in every block above 32 MiB anew: 16,384 faults of 4 KiB each
    time); the user's malloc settings (a MALLOC_* variable) turn it off."""
    env = {k: v for k, v in cli_env().items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", FAULTS_OF_REPEATED_ALLOCATIONS], env=env, capture_output=True,
                          text=True, check=True)
    kept, default, after = done.stdout.split()
    if kept == "False":
        pytest.skip("not glibc")
    assert int(default) >= 4 * 2**24 * 4 // 2**21  # at least one fault per 2 MiB (huge pages) per step
    assert int(after) < int(default) // 20
    off = subprocess.run([sys.executable, "-c", FAULTS_OF_REPEATED_ALLOCATIONS],
                         env={**env, "MALLOC_TOP_PAD_": "0"}, capture_output=True, text=True, check=True)
    assert off.stdout.split()[0] == "False"
