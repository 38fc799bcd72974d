"""Faults with real processes on a temp DAGSTER_HOME: kill -9 of a run frees its pool slot, a blocked step says
at INFO what it waits for, and SIGTERM / SIGINT stop a run-grid blocked on a pool within seconds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.recovery import PID_TAG, process_alive

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")

JOBS = """
import time
import dagster as dg
from pipelines.recovery import recovering_executor

@dg.op(pool="duckdb")
def hold_slot():
    time.sleep(300)

@dg.op(pool="duckdb")
def quick():
    return 1

@dg.job(executor_def=recovering_executor)
def holder():
    hold_slot()

@dg.job(executor_def=recovering_executor)
def second():
    quick()

defs = dg.Definitions(jobs=[holder, second])
"""

# Holds the `probe` pool (the one run-grid's probe step needs) in process through dg.materialize.
HOLD_PROBE = """
import time
import dagster as dg
from pipelines.recovery import process_tags

@dg.asset(pool="probe")
def hold_probe():
    time.sleep(300)

dg.materialize([hold_probe], instance=dg.DagsterInstance.get(), tags=process_tags())
"""

# The supervised run-grid path on a grid of one partition: the probe of the base model, blocked on the pool.
TINY_GRID = """
import sys
from pipelines.launch import default_instance
from pipelines.recovery import supervise
cmd = [sys.executable, "-c", "from startpoint.grid import Grid; from pipelines.launch import run_grid; "
       "run_grid(Grid('tiny', (), (), (0,)), log=print)"]
sys.exit(supervise(cmd, what="run-grid", instance_factory=default_instance, hint="; rerun to complete the grid"))
"""


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "jobs.py").write_text(JOBS)
    return {**os.environ, "DAGSTER_HOME": str(home), "STARTPOINT_HOME": str(tmp_path / "home"),
            "PYTHONUNBUFFERED": "1"}


def _instance(env) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def _spawn(args, env, **kw) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, **kw)


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _holders(instance, pool: str) -> list:
    return list(instance.event_log_storage.get_concurrency_info(pool).claimed_slots)


def _pending(instance, pool: str, run_id: str | None = None) -> list:
    return [p for p in instance.event_log_storage.get_concurrency_info(pool).pending_steps
            if run_id is None or p.run_id == run_id]


def _step_worker_pids(instance, run_id: str) -> list[int]:
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)
    return [int(e.dagster_event.event_specific_data.metadata["pid"].value) for e in entries]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_kill_9_of_a_run_frees_its_pool_slot_for_the_next_run(env, tmp_path):
    instance = _instance(env)
    holder = _spawn([DAGSTER, "job", "execute", "-f", str(tmp_path / "jobs.py"), "-j", "holder"], env)
    second = None
    try:
        slot = _wait_for(lambda: _holders(instance, "duckdb"), 60, "the holder to claim the duckdb slot")[0]
        held_run = instance.get_run_by_id(slot.run_id)
        assert held_run.tags[PID_TAG] == str(holder.pid)  # the executor recorded the run's process
        workers = _wait_for(lambda: _step_worker_pids(instance, slot.run_id), 30, "the holder's step worker")

        second = _spawn([DAGSTER, "job", "execute", "-f", str(tmp_path / "jobs.py"), "-j", "second"], env)
        out: list[str] = []
        # The blocked step says at INFO which pool it waits for and which run holds it.
        _wait_for(lambda: out.append(second.stdout.readline()) or "waits for a slot in pool duckdb" in out[-1],
                  60, "the INFO line of the blocked step")
        assert " - INFO - " in out[-1] and slot.run_id in out[-1] and "running" in out[-1], out[-1]

        os.kill(holder.pid, signal.SIGKILL)  # only the run worker: its step process is left orphaned
        holder.wait()
        rest, _ = second.communicate(timeout=60)
        output = "".join(out) + rest
        assert second.returncode == 0, output
        assert "is gone" in output and "RUN_SUCCESS" in output
    finally:
        _stop(holder)
        if second is not None:
            _stop(second)
    assert instance.get_run_by_id(slot.run_id).status == dg.DagsterRunStatus.FAILURE
    assert not _holders(instance, "duckdb") and not _pending(instance, "duckdb")
    _wait_for(lambda: not any(process_alive(pid) for pid in workers), 10, "the orphaned step worker to stop")


def test_a_second_run_started_after_the_kill_completes(env, tmp_path):
    instance = _instance(env)
    holder = _spawn([DAGSTER, "job", "execute", "-f", str(tmp_path / "jobs.py"), "-j", "holder"], env)
    try:
        _wait_for(lambda: _holders(instance, "duckdb"), 60, "the holder to claim the duckdb slot")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        _stop(holder)
    second = subprocess.run([DAGSTER, "job", "execute", "-f", str(tmp_path / "jobs.py"), "-j", "second"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr
    assert not _holders(instance, "duckdb")


def test_run_grid_blocked_on_a_pool_stops_within_seconds_on_sigterm_and_sigint_and_dies_with_kill_9(env):
    instance = _instance(env)
    holder = _spawn([sys.executable, "-c", HOLD_PROBE], env)
    grid = None
    try:
        held = _wait_for(lambda: _holders(instance, "probe"), 60, "the holder to claim the probe slot")[0]
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            grid = _spawn([sys.executable, "-c", TINY_GRID], env)
            out: list[str] = []
            _wait_for(lambda: out.append(grid.stdout.readline()) or "waits for a slot in pool probe" in out[-1],
                      60, "the grid's INFO line on the blocked probe step")
            assert held.run_id in out[-1]
            grid_run = next(p.run_id for p in _pending(instance, "probe") if p.run_id != held.run_id)
            if signum == signal.SIGKILL:  # kill -9 of run-grid takes its child (the run's process) along
                os.kill(grid.pid, signum)
                grid.wait()
                child = int(instance.get_run_by_id(grid_run).tags[PID_TAG])
                _wait_for(lambda: not process_alive(child), 10, "the grid's child process to die")
                continue
            sent = time.monotonic()
            os.kill(grid.pid, signum)
            rest, _ = grid.communicate(timeout=10)
            assert time.monotonic() - sent < 10
            assert grid.returncode == 128 + signum, "".join(out) + rest
            last = rest.strip().splitlines()[-1]
            assert last.startswith(f"stopped run-grid on {signal.Signals(signum).name}: 1 run(s) marked failed"), rest
            # The grid's run is failed and holds nothing; the holder keeps its slot.
            assert instance.get_run_by_id(grid_run).status == dg.DagsterRunStatus.FAILURE
            assert [s.run_id for s in _holders(instance, "probe")] == [held.run_id]
            assert [p.run_id for p in _pending(instance, "probe")] == [held.run_id]

        # kill -9 the holder too: `startpoint recover` frees its slot and the killed grid's pending claim.
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        recover = subprocess.run([sys.executable, "-m", "pipelines.cli", "recover"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=60)
        assert recover.returncode == 0, recover.stderr
        assert f"run {held.run_id}" in recover.stdout and f"run {grid_run}" in recover.stdout, recover.stdout
        assert "pool probe (1 slot): no run holds a slot" in recover.stdout
        assert not _holders(instance, "probe") and not _pending(instance, "probe")
        for run_id in (held.run_id, grid_run):
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    finally:
        _stop(holder)
        if grid is not None:
            _stop(grid)
