"""`recommend --run`'s finetunes on one target in single-threaded worker processes, sized like the grid's workers
(`startpoint.engine.device.grid_workers`): a batch of (model, seed) jobs, the seeds of one model (the fixed
protocol) or one seed each of several models (the adaptive protocol).

Seeds that fill every worker run there, one thread each; the rest run in this process on every core. With 3 seeds
and 2 workers, seeds 0 and 1 train side by side and seed 2 alone: on an idle machine that takes less time than 3
runs one after the other with 2 threads, and beside a busy process the workers lose only their share where the
threads of one run would wait on each other. No Dagster here: the caller records the results.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from startpoint.engine.device import THREADS_ENV, grid_workers


def start_worker_process(threads: int) -> None:
    """What a spawned worker does first: its thread count (before torch loads), Ctrl-C left to its parent, and
    death with its parent (PR_SET_PDEATHSIG on Linux), so no worker outlives the command that started it."""
    os.environ[THREADS_ENV] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _finetune(folder, dataset, recipe, seed: int, cache_dir):
    from startpoint.engine.train import finetune

    return finetune(folder, dataset, recipe, seed, log=lambda m: None, cache_dir=cache_dir)


class SeedWorkers:
    """Single-threaded worker processes for a command's finetunes (started on first use, closed with `close`)."""

    def __init__(self, workers: int | None = None):
        import torch

        self.workers = 1 if torch.cuda.is_available() else (workers or grid_workers()[0])
        self._pool: ProcessPoolExecutor | None = None

    def split(self, seeds: Sequence[int]) -> tuple[list[int], list[int]]:
        """(seeds for the workers, seeds for this process): the workers take whole rounds only."""
        seeds = list(seeds)
        k = self.in_workers(len(seeds))
        return seeds[:k], seeds[k:]

    def in_workers(self, n: int) -> int:
        """How many of n finetunes go to the workers: whole rounds only, none when there is a single worker."""
        if self.workers < 2 or n < 2:
            return 0
        return n // self.workers * self.workers

    def run_jobs(self, jobs: Sequence[tuple[str | Path, int]], dataset, recipe, cache_dir: Path | None,
                 run_here: Callable[[int], object], on_result: Callable[[int, object, bool], None]) -> None:
        """Finetune (model folder, seed) `jobs`, possibly of several models: whole rounds in the workers, the rest
        with `run_here(job index)` in this process; `on_result(job index, FinetuneResult, in_worker)` for each, in
        job order."""
        k = self.in_workers(len(jobs))
        futures = []
        if k:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=start_worker_process, initargs=(1,))
            futures = [(i, seed, self._pool.submit(_finetune, str(folder), dataset, recipe, seed, cache_dir))
                       for i, (folder, seed) in enumerate(jobs[:k])]
        for i, seed, future in futures:
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died or could not return: that seed failed
                from startpoint.engine.runs import failed_result

                result = failed_result(dataset.dataset_id, seed, f"the worker process failed: {type(exc).__name__}: "
                                       f"{exc}", metric=getattr(dataset, "metric", None))
            on_result(i, result, True)
        for i in range(k, len(jobs)):
            on_result(i, run_here(i), False)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
