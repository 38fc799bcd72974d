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


def configure_threads() -> int:
    """Use every core this process may run on (containers often report more cores than they grant)."""
    import torch

    n = cpu_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


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
