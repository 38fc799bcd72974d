"""Declarative automation (pipelines/automation.py) on the whole code location: a change of the lake rebuilds the
warehouse tables, the dbt models and the product in one tick; what a person just built is not built again; the
leaderboard has a freshness policy and the sensor is on by default."""

from __future__ import annotations

import os

import dagster as dg
import pytest

from pipelines.automation import AUTOMATION_TAG, automation_sensor
from pipelines.definitions import defs

GROUPS = ("warehouse", "analytics", "product")
FINETUNE = dg.AssetKey(["lake", "finetune_runs"])


def _keys(groups) -> set[dg.AssetKey]:
    return {s.key for s in defs.resolve_all_asset_specs() if s.group_name in groups}


def _report(instance: dg.DagsterInstance, keys, partition: str | None = None) -> None:
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("base_models", ["m"])
        instance.add_dynamic_partitions("targets", ["t"])
        yield instance


def test_what_reads_the_lake_is_automated_and_the_lake_is_not():
    for spec in defs.resolve_all_asset_specs():
        automated = spec.automation_condition is not None
        assert automated == (spec.group_name in GROUPS), spec.key.to_user_string()
    leaderboard = next(s for s in defs.resolve_all_asset_specs() if s.key == dg.AssetKey("leaderboard"))
    assert leaderboard.freshness_policy is not None
    assert automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert automation_sensor.name in {s.name for s in defs.sensors}


def test_a_lake_change_rebuilds_tables_models_and_product_once(instance):
    downstream = _keys(GROUPS)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0, "nothing is built before the lake changes"

    # A person builds everything (the `published` then `product` jobs): nothing is requested again.
    _report(instance, [dg.AssetKey(["lake", "published_results"])])
    _report(instance, downstream)
    built = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert built.total_requested == 0, [r.asset_selection for r in built.run_requests]

    # One finetune run lands in the lake: the same tick requests every table, model and product asset (the sensor
    # makes one run of them, unpartitioned as they are), and nothing upstream.
    _report(instance, [FINETUNE], partition=str(dg.MultiPartitionKey({"model": "m", "target": "t"})))
    changed = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=built.cursor)
    requested = {s.key for s in defs.resolve_all_asset_specs() if changed.get_num_requested(s.key)}
    assert requested == downstream

    # That run done, nothing is left to do.
    _report(instance, downstream)
    done = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=changed.cursor)
    assert done.total_requested == 0


def test_the_sensor_tags_its_runs():
    assert automation_sensor.run_tags == {AUTOMATION_TAG: "lake_changed"}


def test_automation_runs_get_kill_9_recovery():
    """The sensor's runs are runs of the implicit asset job: on the recovering executor (process tags, dead runs'
    pool slots freed), so a killed rebuild does not keep the one `duckdb` slot."""
    if os.environ.get("STARTPOINT_EXECUTOR"):
        pytest.skip("STARTPOINT_EXECUTOR picks another executor here")
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "multiprocess_recovering"
