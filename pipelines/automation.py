"""Declarative automation: what rebuilds by itself when the lake changes, and how fresh the leaderboard must be.

The lake assets (`lake/...`) are made by jobs and sensors a person starts (grid, selection, catalog, import);
everything read from the lake follows on its own through Dagster's automation conditions:

- the warehouse tables (group `warehouse`) when any lake asset they load has a new materialization (any partition:
  one finetune run is enough), once no lake asset they load is in progress, so a grid that is still writing is
  loaded when it pauses, not once per file;
- the dbt models (group `analytics`) and the site and model cards (group `product`) eagerly, when what they read
  changed. A tick that requests the tables also requests what reads them: one run, in lineage order, whose steps
  all sit in the `duckdb` pool (one slot), so there is still one writer, and the tables and models are swapped in
  together (assets/warehouse.py).

A materialization made by a person (the `published` job builds the tables and models after the import in the same
run) is not done again: a target whose inputs were updated before it in the same run counts as handled.

The sensor `startpoint_automation` evaluates these conditions and is on by default: it only ever rebuilds what the
lake already holds (seconds to minutes of DuckDB and dbt, never training), and without it nothing a user reads
follows the lake. The sensors that train (`default_grid`, `full_grid`, `select_<architecture>`) and the Hub ones
stay off until a person turns them on (docs/engine.md).

The conditions are set here, in the code location, not on the asset definitions: they are deployment policy (a
deployment that wants scheduled rebuilds swaps them here), and the asset modules stay what they compute.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

AUTOMATION_TAG = "startpoint/automation"  # on every run the sensor launches, so the Runs page can filter them

# Tables: any lake update (of any partition) since the tables were last built or requested, nothing upstream or
# the tables themselves in progress. `eager()` would also wait for every partition of every lake asset to exist,
# which never happens: the model x target grid of `lake/finetune_runs` is sparse by design.
LAKE_CHANGED = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("the lake changed")

# dbt models and product assets: Dagster's eager condition (inputs updated, none missing or in progress).
INPUTS_CHANGED = dg.AutomationCondition.eager()

WAREHOUSE_GROUPS = ("warehouse",)
DOWNSTREAM_GROUPS = ("analytics", "product")
LEADERBOARD = dg.AssetKey("leaderboard")

# The catalog refresh runs daily (schedule `hub_catalog_refresh`), and every change of the lake rebuilds the
# leaderboard, so a leaderboard older than a day (warn) or a week (fail) says the chain that keeps it current is
# broken: the schedule or the automation sensor is off, or its runs fail.
LEADERBOARD_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(days=7),
                                                       warn_window=dt.timedelta(hours=26))


def automated(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The spec with its group's automation condition (and the leaderboard's freshness policy); others unchanged."""
    if spec.group_name in WAREHOUSE_GROUPS:
        spec = spec.replace_attributes(automation_condition=LAKE_CHANGED)
    elif spec.group_name in DOWNSTREAM_GROUPS:
        spec = spec.replace_attributes(automation_condition=INPUTS_CHANGED)
    if spec.key == LEADERBOARD:
        spec = dg.apply_freshness_policy(spec, LEADERBOARD_FRESHNESS)
    return spec


def with_automation(assets_defs: list) -> list:
    """The asset definitions with the automation conditions on the warehouse, analytics and product assets and the
    leaderboard's freshness policy (the sensor that evaluates them is in ALL_SENSORS, pipelines/sensors.py)."""
    return list(dg.map_asset_specs(automated, assets_defs))


automation_sensor = dg.AutomationConditionSensorDefinition(
    "startpoint_automation",
    target=dg.AssetSelection.groups(*WAREHOUSE_GROUPS, *DOWNSTREAM_GROUPS),
    run_tags={AUTOMATION_TAG: "lake_changed"},
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Rebuilds the warehouse tables, the dbt models and the site and model cards when the lake changes "
    "(pipelines/automation.py). On by default: it never trains, and nothing a user reads follows the lake without it.",
)
