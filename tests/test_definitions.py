"""Load the whole code location the way `dagster dev` does and check every asset spec."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import defs
from startpoint.schema import TABLES

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
        assert f"{table}_table" in keys, table
    for model in ("gains", "model_flags", "winsorized_gains", "ranking_reliability", "base_model_effects",
                  "target_effects", "variance_decomposition", "proxy_validation", "leaderboard"):
        assert model in keys, model
    assert dg.AssetKey("finetune_runs_table") in {d.asset_key for d in keys["gains"].deps}
    assert dg.AssetKey("ranking_reliability") in {d.asset_key for d in keys["leaderboard"].deps}
    assert dg.AssetKey(["lake", "published_results"]) in {d.asset_key for d in keys["finetune_runs_table"].deps}


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


def test_no_two_assets_read_the_same_in_the_lineage():
    """The lineage labels a node by its key's last part: lake files and warehouse tables must differ there."""
    names: dict[str, list[str]] = {}
    for spec in _specs():
        names.setdefault(spec.key.path[-1], []).append(spec.key.to_user_string())
    assert {n: k for n, k in names.items() if len(k) > 1} == {}


def test_every_warehouse_table_and_dbt_model_has_a_whole_column_schema():
    specs = {s.key.to_user_string(): s for s in _specs()}
    for table, spec in TABLES.items():
        columns = specs[f"{table}_table"].metadata["dagster/column_schema"].columns
        assert [c.name for c in columns] == spec.schema.names, table
        assert all(c.type and c.description for c in columns), [c.name for c in columns if not c.description]
    dbt_models = [s for s in specs.values() if s.metadata.get("dagster_dbt/unique_id", "").startswith("model.")]
    assert len(dbt_models) >= 13
    for spec in dbt_models:
        columns = spec.metadata["dagster/column_schema"].columns
        assert columns, spec.key
        missing = [c.name for c in columns if not c.description or c.type in ("", "?")]
        assert missing == [], (spec.key.to_user_string(), missing)


def test_asset_metadata_holds_no_unserializable_value():
    """The dbt project handle is not put into the assets' metadata (the UI showed it as "(unserializable)")."""
    for spec in _specs():
        assert "dagster_dbt/project" not in spec.metadata, spec.key


def test_product_job_builds_the_site_and_the_model_cards():
    job = defs.resolve_job_def("product")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {"leaderboard_site", "model_cards"}
