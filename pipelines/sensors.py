"""Sensors."""

from __future__ import annotations

ALL_SENSORS: list = []

from pipelines.hub_automation import hub_new_models  # noqa: E402

ALL_SENSORS.append(hub_new_models)

from pipelines.launch import GRID_SENSORS  # noqa: E402  default_grid, full_grid, select_<architecture>

ALL_SENSORS.extend(GRID_SENSORS)

from pipelines.maintenance import (
    lake_compaction,  # compact_lake when per-unit files pile up
)

ALL_SENSORS.append(lake_compaction)

from pipelines.automation import (  # noqa: E402
    automation_sensor,  # rebuilds the warehouse, dbt models and product when the lake changes; on by default
)

ALL_SENSORS.append(automation_sensor)
