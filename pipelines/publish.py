"""`startpoint publish`: the `published` job run in this process, its outcome ending in one clear line.

`dagster job execute` ends a failed run with a stack trace and "Run ... resulted in failure"; a user should read
what went wrong and how to fix it last. Here the run is the same `published` job in the same Dagster instance (it
shows in the UI with its logs), and the command's last line is the failing step's own description (the one line a
known error carries as a `dg.Failure`) or, when a blocking data check failed, that check's description."""

from __future__ import annotations

import sys
from collections.abc import Callable

import dagster as dg

from assets.published import printable

Log = Callable[[str], None]


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))


def failure_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per failed step: `step: description`, the dg.Failure's description where the step raised one, else
    the error's class and first line (an unexpected error; its trace is in the run's logs)."""
    lines = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            text = data.user_failure_data.description
        else:
            message = (data.error.message or "").strip().splitlines() if data.error else []
            text = f"{data.error.cls_name if data.error else 'error'}: {message[0] if message else ''}"
        lines.append(f"{event.step_key}: {_one_line(text)}")
    return lines


def failed_check_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per asset check of ERROR severity that failed (a quarantined lake file, a broken relationship
    between two tables, a dbt test on a model): the data were published, but something in them is wrong."""
    return [f"check {e.check_name} on {e.asset_key.to_user_string()}: {_one_line(e.description or 'failed')}"
            for e in result.get_asset_check_evaluations()
            if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]


def publish(instance: dg.DagsterInstance, log: Log = lambda m: print(m, file=sys.stderr)) -> int:
    """Run `published`; 0 when every step succeeded and every ERROR check passed, else 1 with the reason last."""
    from pipelines.definitions import defs
    from pipelines.launch import execute_job
    from pipelines.recovery import free_dead_runs, process_tags

    if not instance.is_ephemeral:
        free_dead_runs(instance, log=log)
    job = defs.resolve_job_def("published")
    result = execute_job(job, instance, process_tags())
    failures, checks = failure_lines(result), failed_check_lines(result)
    materialized = len({e.asset_key for e in result.get_asset_materialization_events()})
    if failures:
        log(f"published: failed (run {result.run_id}); {materialized} asset(s) materialized before it stopped")
        for line in checks + failures:
            log(line)
        return 1
    if checks:
        log(f"published: {materialized} asset(s) materialized (run {result.run_id}), {len(checks)} check(s) failed")
        for line in checks:
            log(line)
        return 1
    log(f"published: {materialized} asset(s) materialized (run {result.run_id}), every check passed")
    return 0
