"""CPU-bound neighbours for the benchmarks that measure a command beside a busy machine (a browser, a CI job):
`spinning(n)` keeps n processes spinning (`while True: pass`) for the length of a `with` block."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

HOG = "while True: pass"


@contextlib.contextmanager
def spinning(hogs: int) -> Iterator[None]:
    """`hogs` spinning Python processes while the block runs, killed (and reaped) when it ends, however it ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()
