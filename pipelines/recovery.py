"""Fault recovery: runs killed with kill -9 give back their Dagster pool slots; blocked steps say what they wait for.

Dagster frees a step's pool slot when the step ends and a run's pending claims when its executor exits, but a
run whose process is killed (kill -9, OOM killer, lost machine) stays STARTED and keeps its slot: with a pool of
one slot (`duckdb`) every later run then waits forever, and says so only at DEBUG. Dagster's own cure (run
monitoring plus `free_slots_after_run_end_seconds`) needs the daemon, which `dagster job execute` and
`startpoint run-grid` do not run. So:

* every run started by `run_grid` or by a job with `recovering_executor` records its process in run tags
  (`startpoint/process/host`, `startpoint/process/pid`, `startpoint/process/start`: the process start time,
  against pid reuse). The UI lists a run's tags alphabetically, so under `startpoint/process/` they come after
  the tags a user filters by (`startpoint/grid`, `startpoint/automation`, `startpoint/compact`); runs recorded
  under the old names (`startpoint/host`, `startpoint/pid`, `startpoint/pid_start`) are still judged;
* `free_dead_runs` marks each unfinished run whose process is gone (same host, pid absent, a zombie or reused)
  as failed, stops the step workers it left behind, and frees the pool slots and pending claims of dead and of
  finished runs. `run_grid`, every job with `recovering_executor` and `startpoint recover` call it at start;
* `PoolWatch` (a thread beside a run) notices when one of its steps waits for a pool, logs at INFO which pool
  and which runs hold it, and frees dead holders while it waits, so a run started before the holder died
  still completes;
* `supervise` runs a command (the grid) in a child process and stops it within seconds on SIGINT / SIGTERM,
  even while Dagster waits for a pool slot (it captures interrupts there and never looks at them): it asks
  the child to stop, kills it after a grace period and frees what the child held. kill -9 of the supervisor
  kills the child too (Linux: parent-death signal).

Runs without the tags (started elsewhere) or from another host are never judged dead; `startpoint recover
--run-id` frees such a run by hand.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import dagster as dg

HOST_TAG = "startpoint/process/host"
PID_TAG = "startpoint/process/pid"
PID_START_TAG = "startpoint/process/start"
# The names before the process tags moved under one prefix: runs an older version recorded keep them.
_LEGACY_TAGS = {HOST_TAG: "startpoint/host", PID_TAG: "startpoint/pid", PID_START_TAG: "startpoint/pid_start"}
Log = Callable[[str], None]

# Dagster's own lists of these live in a private module; these are the same statuses through the public enum.
FINISHED_STATUSES = frozenset({dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})
IN_PROGRESS_RUN_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                            dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.SUSPENDED]


def _quiet(_: str) -> None:
    pass


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first); None where /proc is missing or the
    process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str:
    """The process start time in clock ticks since boot ('' without /proc)."""
    stat = _proc_stat(pid)
    return stat[19] if stat and len(stat) > 19 else ""


def process_tag(run: dg.DagsterRun, key: str) -> str:
    """A process tag of `run` (HOST_TAG, PID_TAG, PID_START_TAG), read under its old name for older runs."""
    return run.tags.get(key) or run.tags.get(_LEGACY_TAGS[key], "")


def process_tags(pid: int | None = None) -> dict[str, str]:
    """Run tags naming the process that executes the run."""
    pid = pid or os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: _start_time(pid)}


def process_alive(pid: int, start: str = "") -> bool:
    """Whether this host runs process `pid` (and it is the one that started at `start`, when known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    stat = _proc_stat(pid)
    if stat is None:
        return not os.path.isdir("/proc")  # gone between the two calls, or no /proc: trust kill(0)
    if stat[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return not start or len(stat) <= 19 or stat[19] == start


def run_alive(run: dg.DagsterRun) -> bool | None:
    """True / False for a run whose process this host can check; None when that cannot be told here."""
    pid = process_tag(run, PID_TAG)
    if process_tag(run, HOST_TAG) != socket.gethostname() or not pid.isdigit():
        return None
    return process_alive(int(pid), process_tag(run, PID_START_TAG))


def record_process(instance: dg.DagsterInstance, run_id: str) -> None:
    instance.add_run_tags(run_id, process_tags())


def _pool_infos(instance: dg.DagsterInstance) -> dict:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    return dict(storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())))


def _slot_run_ids(instance: dg.DagsterInstance) -> set[str]:
    """Runs that hold a pool slot or have a step queued for one."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return set()
    ids = set(storage.get_concurrency_run_ids())
    for info in _pool_infos(instance).values():
        ids.update(slot.run_id for slot in info.claimed_slots)
    return ids


def _stop_step_workers(instance: dg.DagsterInstance, run: dg.DagsterRun, log: Log) -> None:
    """Stop the step processes a killed multiprocess run left behind (they would keep the warehouse lock)."""
    if process_tag(run, HOST_TAG) != socket.gethostname():
        return
    parent_start = process_tag(run, PID_START_TAG)
    stopped = []
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED):
        event = entry.dagster_event
        meta = event.event_specific_data.metadata if event and event.event_specific_data else {}
        pid = getattr(meta.get("pid"), "value", None)
        if not (pid and str(pid).isdigit()):
            continue
        pid = int(pid)
        start = _start_time(pid)
        # A pid reused since then started after its worker: require a start no earlier than the run's process.
        if not process_alive(pid) or (parent_start and start and int(start) < int(parent_start)):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    for pid in stopped:
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if stopped:
        log(f"stopped step worker(s) {stopped} left behind by run {run.run_id}")


def release_run(instance: dg.DagsterInstance, run_id: str, reason: str, log: Log = _quiet) -> None:
    """Mark an unfinished run failed (with `reason` in its event log), stop its orphaned step workers and free
    its pool slots and pending claims."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status not in FINISHED_STATUSES:
        instance.report_run_failed(run, message=reason)
        _stop_step_workers(instance, run, log)
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def free_dead_runs(instance: dg.DagsterInstance, log: Log = _quiet) -> list[str]:
    """Fail the unfinished runs whose process is gone and free the pool slots of dead and finished runs.

    Returns the ids of the runs released. Runs this host cannot judge (no process tags, another host) are kept.
    """
    slot_ids = _slot_run_ids(instance)
    ids = set(slot_ids)
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES)):
        if process_tag(record.dagster_run, HOST_TAG) == socket.gethostname():
            ids.add(record.dagster_run.run_id)
    released = []
    for run_id in sorted(ids):
        run = instance.get_run_by_id(run_id)
        if run is None or run.status in FINISHED_STATUSES:
            why = "was deleted" if run is None else f"ended ({run.status.value})"
            if run_id in slot_ids:
                instance.event_log_storage.free_concurrency_slots_for_run(run_id)
                log(f"freed the pool slots of run {run_id}, which {why}")
                released.append(run_id)
            continue
        if run_alive(run) is False:
            reason = (f"process {process_tag(run, PID_TAG)} on {process_tag(run, HOST_TAG)} is gone (killed?): run "
                      "marked failed and its pool slots freed by startpoint recovery")
            release_run(instance, run_id, reason, log)
            log(f"run {run_id} ({run.job_name}): {reason}")
            released.append(run_id)
    return released


def describe_holders(instance: dg.DagsterInstance, pool: str, exclude: Iterable[str] = ()) -> str:
    """'pool duckdb (1 slot): held by run abc (job published, step warehouse_tables, pid 12 on h, running)'."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    skip = set(exclude)
    parts = []
    for slot in info.claimed_slots:
        if slot.run_id in skip:
            continue
        run = instance.get_run_by_id(slot.run_id)
        if run is None:
            parts.append(f"run {slot.run_id} (deleted)")
            continue
        alive = run_alive(run)
        state = {True: "running", False: "process gone", None: "process unknown here"}[alive]
        pid = process_tag(run, PID_TAG)
        where = f"pid {pid} on {process_tag(run, HOST_TAG)}, " if pid else ""
        parts.append(f"run {slot.run_id} (job {run.job_name}, step {slot.step_key}, {where}{state}, "
                     f"status {run.status.value})")
    queued = sum(1 for p in info.pending_steps if p.assigned_timestamp is None and p.run_id not in skip)
    holders = "; ".join(parts) if parts else "no run holds a slot"
    return (f"pool {pool} ({info.limit} slot{'s' if info.limit != 1 else ''}): {holders}"
            + (f"; {queued} other step(s) queued" if queued else ""))


class PoolWatch:
    """A thread beside a run: while one of `mine`'s steps waits for a pool slot, log at INFO what it waits for
    (again when the holders change) and free the slots of dead holders. Use as a context manager."""

    def __init__(self, instance: dg.DagsterInstance, mine: Callable[[dg.DagsterRun], bool], log: Log,
                 interval: float = 1.0):
        self.instance, self.mine, self.log, self.interval = instance, mine, log, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="startpoint-pool-watch", daemon=True)
        self._said: dict[tuple[str, str], str] = {}
        self._mine: dict[str, bool] = {}

    def __enter__(self) -> PoolWatch:
        if self.instance.event_log_storage.supports_global_concurrency_limits:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)

    def _is_mine(self, run_id: str) -> bool:
        if run_id not in self._mine:
            run = self.instance.get_run_by_id(run_id)
            self._mine[run_id] = bool(run and self.mine(run))
        return self._mine[run_id]

    def check(self) -> None:
        waiting = [(pool, p) for pool, info in _pool_infos(self.instance).items() for p in info.pending_steps
                   if p.assigned_timestamp is None and self._is_mine(p.run_id)]
        if not waiting:
            return
        if free_dead_runs(self.instance, log=self.log):
            return  # the freed slots go to the queued steps; look again next time
        for pool, pending in waiting:
            text = describe_holders(self.instance, pool, exclude=[pending.run_id])
            if self._said.get((pending.run_id, pending.step_key)) != text:
                self._said[(pending.run_id, pending.step_key)] = text
                self.log(f"step {pending.step_key} of run {pending.run_id} waits for a slot in {text}")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001  the watch must never take the run down
                self.log(f"pool watch: {type(exc).__name__}: {exc}")


class RecoveringExecutor(dg.Executor):
    """Wraps an executor: records the run's process, frees dead runs' slots, then watches pool waits."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        instance, run_id = plan_context.instance, plan_context.run_id
        if not instance.is_ephemeral:
            record_process(instance, run_id)
            free_dead_runs(instance, log=plan_context.log.info)
        with PoolWatch(instance, lambda run: run.run_id == run_id, plan_context.log.info):
            yield from self._inner.execute(plan_context, execution_plan)


@dg.executor(
    name="multiprocess_recovering",
    config_schema=dg.multiprocess_executor.config_schema,
    requirements=dg.multiple_process_executor_requirements(),
)
def recovering_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's multiprocess executor plus `RecoveringExecutor` (process tags, dead-run recovery, INFO on waits)."""
    return RecoveringExecutor(dg.multiprocess_executor.executor_creation_fn(init_context))


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the supervisor dies (kill -9 of `startpoint run-grid` then stops
    the grid too, and its runs are dead to `free_dead_runs`)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def supervise(cmd: Sequence[str], *, what: str, instance_factory: Callable[[], dg.DagsterInstance] | None = None,
              grace: float = 3.0, hint: str = "") -> int:
    """Run `cmd` as a child process; on SIGINT or SIGTERM ask it to stop (SIGINT), kill it after `grace`
    seconds (at once on a second signal), free what it held and return 128 + the signal number."""
    proc = subprocess.Popen(list(cmd), preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    got: list[tuple[int, float]] = []

    def on_signal(signum, _frame) -> None:
        got.append((signum, time.monotonic()))
        try:
            proc.send_signal(signal.SIGINT if len(got) == 1 else signal.SIGKILL)
        except OSError:
            pass

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        killed = False
        while proc.poll() is None:
            if got and time.monotonic() - got[0][1] > grace:
                proc.kill()
                killed = True
            time.sleep(0.05)
        rc = proc.wait()
        if not got:
            return rc
        signum = got[0][0]
        released = free_dead_runs(instance_factory()) if instance_factory else []
        if killed or rc < 0:
            freed = f"{len(released)} run(s) marked failed and their pool slots freed" if released else \
                "no pool slot was left claimed"
            print(f"stopped {what} on {signal.Signals(signum).name}: {freed}{hint}", file=sys.stderr, flush=True)
        return rc if rc > 0 else 128 + signum
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
