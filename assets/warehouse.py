"""The warehouse base tables, rebuilt from the Parquet lake by one writer.

Where a table's rows come from (one hop): the lake assets listed in `LAKE_WRITERS`. Each table's asset is named
`<table>_table` (the DuckDB table keeps its name, see `dagster/table_name`), so the lineage reads
`lake/finetune_runs -> finetune_runs_table` and not the same name twice.
"""


import errno

import dagster as dg

from assets.published import clear_failure, printable
from assets.resources import LakeResource, WarehouseResource
from startpoint.schema import TABLES
from startpoint.warehouse.columns import column_docs
from startpoint.warehouse.load import POOL, WarehouseUnreadable, load_tables

# The asset check on each base table that fails when a lake file of the table was quarantined by the load.
LAKE_FILES_CHECK = "lake_files_valid"


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
                   dg.AssetKey(["lake", "intermediate_models"]), dg.AssetKey(["lake", "finetune_runs"]),
                   dg.AssetKey(["lake", "fused_models"])],
    "datasets": [dg.AssetKey(["lake", "published_results"]), dg.AssetKey(["lake", "datasets"])],
    "finetune_runs": [dg.AssetKey(["lake", "published_results"]), dg.AssetKey(["lake", "finetune_runs"])],
    "probe_scores": [dg.AssetKey(["lake", "published_results"]), dg.AssetKey(["lake", "probe_scores"])],
    "rejected_rows": [dg.AssetKey(["lake", "published_results"])],
}


# The step of the dbt models (assets/sql_models.py), which publishes tables loaded in the same run.
SQL_MODELS_STEP = "sql_models"


def sql_models_follow(context: dg.AssetExecutionContext) -> bool:
    """Whether this run builds the SQL models after the tables: then the tables wait in the pending file and the
    models' swap publishes both, so a reader never sees new base tables beside old (or no) models."""
    if not context.job_def.has_node_named(SQL_MODELS_STEP):
        return False
    steps = context.run.step_keys_to_execute
    return steps is None or SQL_MODELS_STEP in steps


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
    check_specs=[
        dg.AssetCheckSpec(LAKE_FILES_CHECK, asset=table_key(name),
                          description="Every lake file of the table is valid Parquet: fails naming each file the "
                                      "load moved to `<lake>/_quarantine/` (the table loads without it)")
        for name in TABLES
    ],
    pool=POOL,
    can_subset=False,
)
def warehouse_tables(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource):
    """Rebuild every base table from the lake into a staging copy of the warehouse and swap it in whole (newest
    row per key wins); in a run that also builds the SQL models, the swap waits for them (one swap for both). Readers, even an open `duckdb` shell, never block it; a lake file that is not valid
    Parquet is moved to `<lake>/_quarantine/`, logged as a WARNING, listed in the table's metadata and fails the
    table's `lake_files_valid` check, naming the file. A known load error (unreadable warehouse, unknown column
    in a named file, a busy writer, a full disk) fails the step with its one line as the description."""
    publish = not sql_models_follow(context)
    if not publish:
        context.log.info("the SQL models of this run build on these tables and publish both in one swap")
    try:
        counts = load_tables(lake.url, warehouse.path, log=context.log, publish=publish)
    except (WarehouseUnreadable, TimeoutError) as exc:
        raise clear_failure(exc, retry=True) from None
    except ValueError as exc:  # unknown column(s) in a named lake file, a corrupt file outside the quarantine
        raise clear_failure(exc) from None
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise clear_failure(exc, retry=True) from None
    bad: dict[str, list[str]] = {}
    for q in counts.quarantined:
        bad.setdefault(q.table, []).append(printable(f"- `{q.path}` -> `{q.moved_to}`: {q.reason}"))
    for name, n in counts.items():
        context.log.info(f"{name}: {n} rows")
        metadata = {"dagster/row_count": n, "warehouse": warehouse.path,
                    "quarantined_files": dg.MetadataValue.int(len(bad.get(name, [])))}
        if bad.get(name):
            metadata["quarantined"] = dg.MetadataValue.md("\n".join(bad[name]))
        yield dg.MaterializeResult(asset_key=table_key(name), metadata=metadata)
        files = [printable(q.path) for q in counts.quarantined if q.table == name]
        yield dg.AssetCheckResult(
            asset_key=table_key(name), check_name=LAKE_FILES_CHECK, passed=not files,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(f"{len(files)} lake file(s) quarantined as not valid Parquet: {', '.join(files)}; rerun "
                         "the job that wrote them" if files else "every lake file is valid Parquet"),
            metadata={"quarantined_files": dg.MetadataValue.int(len(files)),
                      **({"files": dg.MetadataValue.md("\n".join(bad[name]))} if files else {})},
        )
