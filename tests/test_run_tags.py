"""Run tags: the ones a user filters by come first on the Runs page (Dagster lists a run's tags alphabetically),
the process tags of kill -9 recovery after them; runs recorded under the old names are still recovered."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import dagster as dg

from pipelines.automation import AUTOMATION_TAG
from pipelines.launch import GRID_TAG
from pipelines.recovery import HOST_TAG, PID_START_TAG, PID_TAG, _start_time, process_tags, run_alive


def test_process_tags_sort_after_the_tags_users_filter_by():
    tags = {**process_tags(), GRID_TAG: "default", AUTOMATION_TAG: "lake_changed", "startpoint/compact": "1"}
    order = sorted(tags)
    assert order[:3] == sorted([GRID_TAG, AUTOMATION_TAG, "startpoint/compact"])
    assert set(order[3:]) == {HOST_TAG, PID_TAG, PID_START_TAG}


def _run(tags: dict[str, str]) -> dg.DagsterRun:
    return dg.DagsterRun(job_name="grid_probe_scores", run_id="r", tags=tags)


def test_runs_recorded_under_the_old_tag_names_are_still_judged():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    me = {"startpoint/host": host, "startpoint/pid": str(os.getpid()), "startpoint/pid_start": _start_time(os.getpid())}
    assert run_alive(_run(me)) is True
    assert run_alive(_run({**me, "startpoint/pid": str(gone.pid), "startpoint/pid_start": ""})) is False
    assert run_alive(_run({"startpoint/host": "elsewhere", "startpoint/pid": "1"})) is None
    assert run_alive(_run(process_tags())) is True
    assert run_alive(_run({})) is None
