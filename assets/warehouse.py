"""The warehouse base tables, rebuilt from the Parquet lake by one writer.

Where a table's rows come from (one hop): the lake assets listed in `LAKE_WRITERS`.
"""


import dagster as dg

from pipelines.resources import LakeResource, WarehouseResource
from pipelines.warehouse.load import POOL, load_tables
from pipelines.warehouse.schema import TABLES

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
            name,
            deps=LAKE_WRITERS.get(name, []),
            description=spec.description,
            group_name="warehouse",
            kinds={"duckdb"},
            metadata={"dagster/table_name": f"warehouse.main.{name}"},
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
        yield dg.MaterializeResult(asset_key=name, metadata=metadata)
