"""Lake upkeep that runs by itself: the `lake_compaction` sensor requests a `compact_lake` run when an origin of a
lake table holds STARTPOINT_COMPACT_FILES per-unit files (default 1000); the run merges them (`lake.compact`), so
the number of files the warehouse load lists stays bounded. The op runs in the warehouse writers' pool, so a
compaction never removes files under a load that is reading them. `startpoint compact` does the same from a shell.
"""

import dagster as dg
from pydantic import Field

from assets.resources import LakeResource
from pipelines.recovery import recovering_executor
from startpoint import lake as lake_files
from startpoint.settings import compact_files_threshold
from startpoint.warehouse.load import POOL

JOB_NAME = "compact_lake"
_IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


class CompactConfig(dg.Config):
    min_files: int = Field(0, description="compact an origin holding at least this many per-unit files; "
                                          "0: STARTPOINT_COMPACT_FILES (default 1000)")


@dg.op(pool=POOL, description="Merge the lake's per-unit files (and small compacted ones) of every origin that "
                              "holds enough of them.")
def compact_lake_files(context: dg.OpExecutionContext, config: CompactConfig, lake: LakeResource) -> None:
    min_files = config.min_files or compact_files_threshold()
    done = lake_files.compact_due(lake.url, min_files=min_files)
    for c in done:
        context.log.info(c.line())
    if not done:
        context.log.info(f"no origin holds {min_files:,} per-unit files: nothing compacted")
    context.add_output_metadata({
        "origins compacted": len(done),
        "files before": sum(c.files_before for c in done),
        "files after": sum(c.files_after for c in done),
        "rows": sum(c.rows for c in done),
    })


@dg.job(name=JOB_NAME, executor_def=recovering_executor,
        description="Compact the lake: merge per-unit Parquet files so the file count stays bounded.")
def compact_lake_job() -> None:
    compact_lake_files()


@dg.sensor(name="lake_compaction", job=compact_lake_job, default_status=dg.DefaultSensorStatus.RUNNING,
           minimum_interval_seconds=600,
           description="Request a compact_lake run when an origin holds STARTPOINT_COMPACT_FILES per-unit files.")
def lake_compaction(context: dg.SensorEvaluationContext, lake: LakeResource):
    """One run at a time: while the last compact_lake run is in flight nothing is requested, and the run key names
    that last run, so a key never repeats while it runs and a new one follows once it has finished."""
    min_files = compact_files_threshold()
    counts = lake_files.unit_file_counts(lake.url)
    due = [c for c in counts if c[2] >= min_files]
    if not due:
        largest = sorted(counts, key=lambda c: -c[2])[:5]
        shown = ", ".join(f"{t}/{o} {n:,}" for t, o, n in largest) or "no per-unit files"
        return dg.SkipReason(f"no origin holds {min_files:,} per-unit files ({shown})")
    last = context.instance.get_runs(filters=dg.RunsFilter(job_name=JOB_NAME), limit=1)
    if last and last[0].status in _IN_FLIGHT:
        return dg.SkipReason(f"compact_lake run {last[0].run_id} is still in flight")
    listed = ", ".join(f"{t}/{o} {n:,}" for t, o, n in due)
    context.log.info(f"requesting compact_lake: {listed} per-unit files (threshold {min_files:,})")
    return dg.RunRequest(run_key=f"after:{last[0].run_id if last else 'none'}",
                         run_config={"ops": {"compact_lake_files": {"config": {"min_files": min_files}}}},
                         tags={"startpoint/compact": listed[:200]})
