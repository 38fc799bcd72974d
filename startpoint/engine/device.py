"""Where a run computes: CUDA when present (no configuration), else every CPU core of this process."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache


def pick_device(device: str | None = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


THREADS_ENV = "STARTPOINT_THREADS"
WORKERS_ENV = "STARTPOINT_WORKERS"


def configure_threads() -> int:
    """Use `STARTPOINT_THREADS` threads (a grid worker sets 1), else every core this process may run on
    (containers often report more cores than they grant)."""
    import torch

    n = _positive_int(THREADS_ENV) or cpu_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def _positive_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r}: expected a whole number of at least 1")
    return int(value)


def grid_workers() -> tuple[int, int]:
    """(worker processes, threads per worker) for a grid stage's independent finetunes.

    Small encoders at batch 16 scale poorly across threads, and threads that wait on each other stall whenever
    another process takes one of the cores (a busy laptop, a CI neighbour). So on CPU the default is one
    single-threaded worker per core this process may use: each worker keeps its own core busy, and a competing
    process slows one worker instead of stalling all of them. With CUDA one worker drives the GPU.
    `STARTPOINT_WORKERS` overrides the count (1 = the previous design: one process, every core)."""
    import torch

    cores = cpu_threads()
    workers = _positive_int(WORKERS_ENV) or (1 if torch.cuda.is_available() else min(cores, _workers_memory_fits()))
    return workers, (cores if workers == 1 else max(1, cores // workers))


# Memory one worker may take: a worker of the default grid peaked at 1.4 GB resident (MiniLM, torch, Dagster loaded).
WORKER_MEMORY_BYTES = 2 * 1024**3
MEMINFO = "/proc/meminfo"


def _workers_memory_fits() -> int:
    """How many workers the memory available now holds (many cores with little memory must not swap)."""
    try:
        with open(MEMINFO) as fh:
            available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return cpu_threads()
    return max(1, available // WORKER_MEMORY_BYTES)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 matmuls natively (AVX512-BF16 or AMX); otherwise bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def autocast_dtype(device: str):
    """bf16 autocast where the hardware runs it natively; None (float32) elsewhere.

    STARTPOINT_BF16=0 turns it off, =1 forces it (for measuring); accuracy is checked by the benchmark.
    """
    import torch

    choice = os.environ.get("STARTPOINT_BF16", "auto")
    if choice == "0":
        return None
    if choice == "1":
        return torch.bfloat16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_native_bf16() else None


def autocast(device: str, dtype):
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)
