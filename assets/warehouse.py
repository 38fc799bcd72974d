"""The warehouse base tables, rebuilt from the Parquet lake by one writer.

Where a table's rows come from (one hop): the lake assets listed in `LAKE_WRITERS`. Each table's asset is named
`<table>_table` (the DuckDB table keeps its name, see `dagster/table_name`), so the lineage reads
`lake/finetune_runs -> finetune_runs_table` and not the same name twice.
"""


import dagster as dg

from assets.resources import LakeResource, WarehouseResource
from startpoint.schema import TABLES
from startpoint.warehouse.columns import column_docs
from startpoint.warehouse.load import POOL, load_tables


def table_key(name: str) -> dg.AssetKey:
    """The asset of warehouse base table `name` (sql/models/sources.yml maps the dbt sources to the same keys)."""
    return dg.AssetKey(f"{name}_table")


def column_schema(name: str) -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(column, type=type_, description=description or None)
        for column, type_, description in column_docs(name)
    ])


# Lake assets (key prefix `lake`) that write files for each base table.
LAKE_WRITERS: dict[str, list[dg.AssetKey]] = {
    "hub_models": [dg.AssetKey(["lake", "published_results"]), dg.AssetKey(["lake", "hub_models"]),
                   dg.AssetKey(["intermediate_models"]), dg.AssetKey(["lake", "finetune_runs"]),
                   dg.AssetKey(["fused_models"])],
    "datasets": [dg.AssetKey(["lake", "published_results"]), dg.AssetKey(["lake", "datasets"])],
    "finetune_runs": [dg.AssetKey(["lake", "published_results"]), dg.AssetKey(["lake", "finetune_runs"])],
    "probe_scores": [dg.AssetKey(["lake", "published_results"]), dg.AssetKey(["lake", "probe_scores"])],
    "rejected_rows": [dg.AssetKey(["lake", "published_results"])],
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            table_key(name),
            deps=LAKE_WRITERS.get(name, []),
            description=spec.description,
            group_name="warehouse",
            kinds={"duckdb"},
            metadata={"dagster/table_name": f"warehouse.main.{name}", "dagster/column_schema": column_schema(name)},
        )
        for name, spec in TABLES.items()
    ],
    pool=POOL,
    can_subset=False,
)
def warehouse_tables(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource):
    """Rebuild every base table from the lake into a staging copy of the warehouse and swap it in whole (newest
    row per key wins). Readers, even an open `duckdb` shell, never block it; a lake file that is not valid
    Parquet is moved to `<lake>/_quarantine/`, logged as a WARNING and listed in the table's metadata."""
    counts = load_tables(lake.url, warehouse.path, log=context.log)
    bad: dict[str, list[str]] = {}
    for q in counts.quarantined:
        bad.setdefault(q.table, []).append(f"- `{q.path}` -> `{q.moved_to}`: {q.reason}")
    for name, n in counts.items():
        context.log.info(f"{name}: {n} rows")
        metadata = {"dagster/row_count": n, "warehouse": warehouse.path,
                    "quarantined_files": dg.MetadataValue.int(len(bad.get(name, [])))}
        if bad.get(name):
            metadata["quarantined"] = dg.MetadataValue.md("\n".join(bad[name]))
        yield dg.MaterializeResult(asset_key=table_key(name), metadata=metadata)
