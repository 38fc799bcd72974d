"""Progress of the long terminal commands (`run-grid`, `recommend --run`): runs done of all, the current run's
examples/s and the time left.

On a terminal it is a rich progress bar, and log lines print above it; anywhere else (a pipe, a log file, CI) it
prints one plain line per finished run, so logs stay greppable. Time left is the mean time of the finished runs
times the runs still to go: a rough figure early on, and said to be so ("~").
"""

from __future__ import annotations

import sys
import time
from typing import IO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class RunProgress:
    """Use as a context manager: `start(name)` when a run begins, `examples(n)` as it trains (optional),
    `finish(ok, examples_per_second)` when it ends, `log(text)` for any line the command prints meanwhile."""

    def __init__(self, total: int, label: str, stream: IO[str] | None = None, terminal: bool | None = None):
        self.total, self.label = total, label
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.done = self.failed = 0
        self.current: str | None = None
        self._run_started = self._examples = 0.0
        self._finished_seconds = 0.0
        self.workers = 1  # runs in parallel (the grid's workers): time left divides by it
        self._bar = None
        self._task = None

    # -- context -------------------------------------------------------------------------------------------------
    def __enter__(self) -> RunProgress:
        if self.terminal:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
            )

            console = Console(file=self.stream, force_terminal=True)
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[left]}"),
                                 console=console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, rate="", left="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    # -- events --------------------------------------------------------------------------------------------------
    def start(self, name: str) -> None:
        self.current, self._run_started, self._examples = name, time.monotonic(), 0.0
        self._refresh()

    def examples(self, n: int) -> None:
        """`n` more training examples went through the current run (drives the live examples/s)."""
        self._examples += n
        self._refresh()

    def finish(self, ok: bool = True, examples_per_second: float | None = None, *, name: str | None = None,
               seconds: float | None = None) -> None:
        """The current run ended; or, with `name` and `seconds`, a run of a parallel worker did (the workers
        report their runs as they end, several may be running at once)."""
        if seconds is not None:
            self._finished_seconds += seconds
        else:
            self._finished_seconds += time.monotonic() - self._run_started if self.current else 0.0
        self.done += 1
        self.failed += not ok
        if name is None:
            name, self.current = self.current, None
        rate = self._rate(examples_per_second)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            self._refresh(rate)
        else:
            status = "" if ok else " FAILED"
            self.stream.write(f"[{self.label}] {self.done}/{self.total} {name or ''}{status}"
                              f"{', ' + rate if rate else ''}{', ' + self.time_left() if self.time_left() else ''}\n")
            self.stream.flush()

    def log(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(f"{text}\n")
            self.stream.flush()

    # -- figures -------------------------------------------------------------------------------------------------
    def time_left(self) -> str:
        if not self.done or self.done >= self.total:
            return ""
        return "~" + _duration(self._finished_seconds / self.done * (self.total - self.done) / self.workers) + " left"

    def _rate(self, examples_per_second: float | None = None) -> str:
        if examples_per_second is None and self.current and self._examples:
            elapsed = time.monotonic() - self._run_started
            examples_per_second = self._examples / elapsed if elapsed > 0 else None
        return f"{examples_per_second:.1f} ex/s" if examples_per_second else ""

    def _refresh(self, rate: str | None = None) -> None:
        if self._bar is None:
            return
        description = f"{self.label}: {self.current}" if self.current else self.label
        self._bar.update(self._task, description=description,
                         rate=self._rate() if rate is None else rate, left=self.time_left())
