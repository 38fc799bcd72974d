"""A grid stage's independent finetunes in parallel worker processes, each with the threads its core can run.

One process with every core in its thread pool loses most of its speed when another process takes a core: the
threads wait on each other at every operator. Workers of one thread each degrade by their share instead, and on an
idle machine they keep every core busy with the small encoders' short operators (`grid_workers` in
`startpoint.engine.device` sizes them; `STARTPOINT_WORKERS=1` is the previous design). Each worker is a spawned
process that keeps its Dagster definitions loaded between steps, so a step costs one `execute_in_process`, not a
process start; each run is tagged with the worker's own pid, so the kill -9 recovery (`pipelines.recovery`)
frees what a dead worker held. Workers die with the process that started them (PR_SET_PDEATHSIG) and ignore
Ctrl-C: the parent stops them and marks their runs failed.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dagster as dg

from startpoint.engine.parallel import start_worker_process
from startpoint.plan import FINETUNE, INTERMEDIATE, PROBE, Step

# Steps that only compute and write their own partition's files. Probes go to the workers only beside training
# steps: a probe holds the `probe` pool (one slot), so a worker may wait for it for seconds, where a probe in the
# parent left every worker idle until it ended; a stage of probes alone stays in the parent, on every core.
TRAINING_KINDS = frozenset({INTERMEDIATE, FINETUNE})
PARALLEL_KINDS = TRAINING_KINDS | {PROBE}


@dataclass(frozen=True)
class Outcome:
    """How a step ended in a worker: its run's success, whether it was interrupted, the run id, the seconds it
    took in the worker, and the error when the run could not even start."""

    step_id: str
    success: bool
    interrupted: bool = False
    run_id: str = ""
    seconds: float = 0.0
    error: str = ""


def error_line(exc: BaseException) -> str:
    """An error that kept a step from running, as one short line for the grid's log."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class WorkerPool:
    """`workers` spawned processes of `threads` threads each, for the life of one grid (or selection) launch."""

    def __init__(self, workers: int, threads: int):
        self._pool = multiprocessing.get_context("spawn").Pool(workers, initializer=start_worker_process,
                                                               initargs=(threads,))

    def run(self, steps: Iterable[Step], run_step: Callable[..., Outcome], instance: dg.DagsterInstance,
            tags: dict[str, str], on_done: Callable[[Step, Outcome], None]) -> None:
        """Run every step as `run_step(step, instance_ref, tags)` in a worker (a module-level function, so the
        worker can import it), calling `on_done` in this process as each ends (in the order they end)."""
        pending = [(step, self._pool.apply_async(run_step, (step, instance.get_ref(), tags))) for step in steps]
        while pending:
            ready = [(step, result) for step, result in pending if result.ready()]
            for item in ready:
                pending.remove(item)
                step, result = item
                try:
                    outcome = result.get()
                except Exception as exc:  # the worker died or could not return
                    outcome = Outcome(step.id, False, error=error_line(exc))
                on_done(step, outcome)
            if not ready:
                time.sleep(0.1)

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def stop(self) -> None:
        """Kill the workers now (their runs are marked failed by the caller's `free_dead_runs`)."""
        self._pool.terminate()
        self._pool.join()
