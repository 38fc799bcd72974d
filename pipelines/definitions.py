"""The Dagster code location: every asset module in `assets/`, the jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

import assets
from assets.resources import default_resources
from pipelines.automation import with_automation
from pipelines.executors import configured_executor
from pipelines.jobs import ALL_JOBS
from pipelines.schedules import ALL_SCHEDULES
from pipelines.sensors import ALL_SENSORS

defs = dg.Definitions(
    # with their automation conditions and the leaderboard's freshness policy (pipelines/automation.py)
    assets=with_automation(dg.load_assets_from_package_module(assets)),
    asset_checks=dg.load_asset_checks_from_package_module(assets),
    jobs=ALL_JOBS,
    schedules=ALL_SCHEDULES,
    sensors=ALL_SENSORS,
    resources=default_resources(),
    # Asset jobs (backfills, materializations from the UI, the automation sensor's runs) run their steps on the
    # executor STARTPOINT_EXECUTOR names, e.g. Celery workers (docs/scale_out.md); unset, the multiprocess one with
    # kill -9 recovery, so a killed automation run does not keep the one `duckdb` slot.
    executor=configured_executor(),
)
