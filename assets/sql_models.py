"""Every dbt model in `sql/` as a Dagster asset (group `analytics`); dbt tests become asset checks."""


import json
import re
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from assets.dbt import manifest_is_stale, manifest_path, run_target_path
from assets.previews import preview_metadata
from assets.resources import WarehouseResource
from startpoint.settings import SQL_DIR
from startpoint.warehouse.load import POOL, staged

_stale = manifest_is_stale()
if _stale:
    dg.get_dagster_logger().warning(
        f"the dbt manifest is older than sql/{_stale[0].relative_to(SQL_DIR)} (and {len(_stale) - 1} more "
        "file(s) under sql/): run `make manifest` to prepare it again, or the asset graph shows the old models"
    )


def leaderboard_metadata(warehouse: WarehouseResource, top: int = 10) -> dict[str, dg.MetadataValue]:
    """Per architecture: its top rows as a typed table (rank, the gain with its 95% interval, the comparison with #1)
    and the numbers the Plots tab charts over materializations: ranked rows, rank 1's gain with its interval, the ranking's reliability, the base and target variance shares with their intervals."""
    from startpoint.warehouse.summary import TOP_COLUMNS, summaries, top_rows

    schema = dg.TableSchema(columns=[dg.TableColumn(n, type=t, description=d) for n, t, d in TOP_COLUMNS])
    con = warehouse.connect(read_only=True)
    try:
        tables, numbers = top_rows(con, top), summaries(con)
    finally:
        con.close()
    meta: dict[str, dg.MetadataValue] = {}
    for arch, rows in tables.items():
        records = [dg.TableRecord(row) for row in rows]
        meta[f"{arch}/top_{top}"] = dg.MetadataValue.table(records, schema=schema)
    for s in numbers:
        meta[f"{s.architecture}/models"] = dg.MetadataValue.int(s.models)
        for name in ("top_score", "top_score_low", "top_score_high", "reliability", "base_share", "base_share_low",
                     "base_share_high", "target_share", "target_share_low", "target_share_high"):
            value = getattr(s, name)
            if value is not None:
                meta[f"{s.architecture}/{name}"] = dg.MetadataValue.float(float(value))
        if s.top_model is not None:
            meta[f"{s.architecture}/top_model"] = dg.MetadataValue.text(s.top_model)
    return meta


_TESTED_SOURCE = re.compile(r"source\(\s*'([^']+)'\s*,\s*'([^']+)'\s*\)")


def attach_source_tests(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with every generic test on a source that reads two sources (a `relationships` test from one
    base table to another, e.g. `finetune_runs_dataset_id_in_datasets`) attached to the source it tests.

    dbt gives a test on a source no `attached_node`, and dagster-dbt infers one only when the test reads a single
    node, so a relationship between two tables would be an observation (a failure never a failed check). Attached,
    it is an asset check on the tested table's asset (`<table>_table`) that depends on the other table's."""
    project = manifest.get("metadata", {}).get("project_name")
    for node in manifest["nodes"].values():
        if node.get("resource_type") != "test" or node.get("attached_node"):
            continue
        parents = node.get("depends_on", {}).get("nodes", [])
        if len(parents) < 2 or not all(p.startswith("source.") for p in parents):
            continue
        tested = _TESTED_SOURCE.search((node.get("test_metadata") or {}).get("kwargs", {}).get("model") or "")
        if tested is None:
            continue
        unique_id = f"source.{project}.{tested.group(1)}.{tested.group(2)}"
        if unique_id in parents and unique_id in manifest.get("sources", {}):
            node["attached_node"] = unique_id
    return manifest


class _Translator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "analytics"


@dbt_assets(
    manifest=attach_source_tests(json.loads(manifest_path().read_text())),
    # dbt tests are asset checks, those on the sources (keys, relationships) on the warehouse tables they test.
    dagster_dbt_translator=_Translator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True,
                                                                             enable_source_tests_as_checks=True)),
    pool=POOL,
)
def sql_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """`dbt build` the selected models; leaderboard-like tables get a markdown preview in their metadata.

    dbt writes a staging copy of the warehouse (passed to dbt's profile as the `warehouse` var), which
    replaces the live file when dbt has finished, so readers never wait for dbt nor block it, and never see a
    half-built set of models. A dbt run that finishes with failed nodes is swapped in too (its successful models
    are new, the failed ones keep their previous version, as with dbt in place); an interrupted one is not.
    Previews are read from the staging file before the swap: no user session on the live file can delay them."""
    with staged(warehouse.path, log=context.log, require_live=True) as staging:
        # One artifact folder per home, reused run after run (the pool runs one dbt at a time per warehouse);
        # it keeps the latest run's dbt.log only (the Dagster run holds every run's dbt output).
        (run_target_path() / "dbt.log").unlink(missing_ok=True)
        # dbt's profile takes the staging path as the `warehouse` var: nothing in this process's environment
        # changes (the same staging path every run, so dbt's partial parse stays valid).
        invocation = dbt.cli(["build", "--vars", json.dumps({"warehouse": str(staging)})], context=context,
                             raise_on_error=False, target_path=run_target_path())
        events = list(invocation.stream())
        built = WarehouseResource(path=str(staging))
        for i, event in enumerate(events):
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                extra = preview_metadata(key.to_user_string(), built)
                if key == dg.AssetKey("leaderboard") and extra:
                    extra.update(leaderboard_metadata(built))
                if extra:
                    events[i] = event.with_metadata({**(event.metadata or {}), **extra})
    yield from events
    error = invocation.get_error()
    if error is not None:
        raise error
