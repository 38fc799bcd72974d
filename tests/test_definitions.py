"""Load the whole code location the way `dagster dev` does and check every asset spec."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import defs
from pipelines.warehouse.schema import TABLES

GROUPS = {"published", "warehouse", "analytics", "offline_suite", "engine", "hub", "probes", "product"}


def _specs():
    return list(defs.resolve_all_asset_specs())


def test_every_asset_has_a_known_group_and_a_description():
    for spec in _specs():
        assert spec.group_name in GROUPS, f"{spec.key.to_user_string()} is in group {spec.group_name!r}"
        assert spec.description, f"{spec.key.to_user_string()} has no description"


def test_warehouse_tables_and_sql_models_are_assets_with_lineage():
    keys = {s.key.to_user_string(): s for s in _specs()}
    for table in TABLES:
        assert table in keys, table
    for model in ("gains", "model_flags", "winsorized_gains", "ranking_reliability", "base_model_effects",
                  "target_effects", "variance_decomposition", "proxy_validation", "leaderboard"):
        assert model in keys, model
    assert dg.AssetKey("finetune_runs") in {d.asset_key for d in keys["gains"].deps}
    assert dg.AssetKey("ranking_reliability") in {d.asset_key for d in keys["leaderboard"].deps}
    assert dg.AssetKey(["lake", "published_results"]) in {d.asset_key for d in keys["finetune_runs"].deps}


def test_every_duckdb_writer_is_in_the_duckdb_pool():
    writers = {"warehouse_tables", "sql_models"}
    pools = {}
    for assets_def in defs.assets or []:
        if isinstance(assets_def, dg.AssetsDefinition):
            for node in [assets_def.node_def]:
                pools[node.name] = getattr(node, "pool", None)
    for name in writers:
        assert pools.get(name) == "duckdb", (name, pools.get(name))


def test_published_job_exists_and_dbt_tests_are_asset_checks():
    assert defs.resolve_job_def("published") is not None
    checks = list(defs.resolve_asset_graph().asset_check_keys)
    assert any(c.asset_key == dg.AssetKey("variance_decomposition") for c in checks)
