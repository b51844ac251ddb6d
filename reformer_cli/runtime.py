"""Device, precision and seeding choices shared by training, evaluation and benchmarks."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import random
import sys

import torch

from .errors import UserError
from .primitives.devices import as_given, is_device_name, not_a_device


def select_device(name: str, option: str = "trainer.device") -> torch.device:
    """The torch device a device name (primitives/devices.py) stands for: 'auto' picks CUDA when
    available, else the CPU; an explicit device must exist. `option` is the setting or flag the name
    came from, for the one-line errors (`trainer.device`, `device`, `--device`)."""
    if not is_device_name(name):
        raise UserError(not_a_device(option, name))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{as_given(option, name)} but no CUDA device is available (use auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{as_given(option, name)} but MPS is not available (use auto)")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 autocast on CUDA and fp32 elsewhere."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy (if present) and torch; optionally demand deterministic kernels."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:
        pass
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)

    return platform.processor() or platform.machine() or "cpu"


# A step whose activations are smaller than this (batch x length x d_model values) runs fastest on
# one CPU thread: splitting such small operations costs more than it saves, and on a busy machine
# threads that spin-wait for each other made a tiny model's step ten times slower (measured on a
# 2-core VM under load: 300 steps of a tiny model in 13 s on one thread, 134 s on two).
SMALL_STEP_VALUES = 2**18


def small_model_threads(device: torch.device, values_per_step: int) -> int | None:
    """One intra-op thread for a small CPU run (returns 1), unless the user chose the threads
    (OMP_NUM_THREADS) or the step is not small; None when nothing was changed."""
    if device.type != "cpu" or os.environ.get("OMP_NUM_THREADS") or values_per_step >= SMALL_STEP_VALUES:
        return None
    if torch.get_num_threads() > 1:
        torch.set_num_threads(1)
        return 1
    return None


# glibc's malloc gives every block above its mmap threshold (at most 32 MiB) its own fresh mapping,
# unmapped again on free, and returns the free top of its heap to the system: a CPU training step
# that allocates and frees its activations then faults every page of them in anew on every step.
# On the Table 2 cpu profile's LSH-4 step (batch 32 x length 256) that was about 900 MB of fresh pages,
# 220,000 page faults per step, and about as much time in the kernel as in the arithmetic.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)


def user_tuned_malloc() -> bool:
    """The user set glibc's malloc through the environment (MALLOC_* or GLIBC_TUNABLES glibc.malloc.*)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name.startswith("MALLOC_") for name in os.environ) or "glibc.malloc" in tunables


def keep_freed_cpu_memory(device: torch.device) -> bool:
    """For a CPU run on Linux with glibc: malloc keeps freed memory for reuse (heap blocks only, no
    mapping per block, no trimming below 2 GiB free), so each step's tensors reuse the pages of the
    step before instead of faulting fresh ones in. The process keeps its peak memory until it ends,
    as a caching allocator does, plus some fragmentation (the Table 2 cpu LSH-4 step: peak resident
    memory 1.18 GB instead of 0.97 GB; the step 1.4-2x faster). Returns whether it changed
    anything: not on another device or platform, nor when the user tuned malloc (`user_tuned_malloc`)."""
    if device.type != "cpu" or not sys.platform.startswith("linux") or user_tuned_malloc():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) & bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
