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
    """Per architecture, grouped under `<architecture>/`: its top rows as a typed table (the gain with its 95%
    interval as one readable column, then the rounded numbers as sortable columns) and its numbers.

    The Plots tab charts the numeric entries and sorts them by key, so each architecture charts only its values
    (`models`, `reliability`, `share_base_pct`, `share_target_pct`, `top_score`: the two shares side by side); the
    intervals are text entries (`top_score_95ci`, `share_*_95ci`) beside them, not three more charts each."""
    from startpoint.warehouse.summary import TOP_COLUMNS, gain_text, percent, round2, share_text, summaries, top_rows

    def _float(value: float | None) -> dg.MetadataValue | None:
        return None if value is None else dg.MetadataValue.float(value)

    def _text(value: str | None) -> dg.MetadataValue | None:
        return None if value is None else dg.MetadataValue.text(value)

    schema = dg.TableSchema(columns=[dg.TableColumn(n, type=t, description=d) for n, t, d in TOP_COLUMNS])
    con = warehouse.connect(read_only=True)
    try:
        tables, numbers = top_rows(con, top), summaries(con)
    finally:
        con.close()
    by_arch: dict[str, dict[str, dg.MetadataValue | None]] = {
        arch: {f"top_{top}": dg.MetadataValue.table([dg.TableRecord(row) for row in rows], schema=schema)}
        for arch, rows in tables.items()}
    for s in numbers:
        by_arch.setdefault(s.architecture, {}).update({
            "models": dg.MetadataValue.int(s.models),
            "top_model": None if s.top_model is None else dg.MetadataValue.text(s.top_model),
            "top_score": _float(round2(s.top_score)),
            "top_score_95ci": _text(gain_text(s.top_score, s.top_score_low, s.top_score_high)),
            "reliability": _float(round2(s.reliability)),
            "share_base_pct": _float(percent(s.base_share)),
            "share_base_95ci": _text(share_text(s.base_share, s.base_share_low, s.base_share_high)),
            "share_target_pct": _float(percent(s.target_share)),
            "share_target_95ci": _text(share_text(s.target_share, s.target_share_low, s.target_share_high)),
        })
    # The Details list shows entries in this order: each architecture's table, then its numbers.
    return {f"{arch}/{k}": v for arch in sorted(by_arch) for k, v in by_arch[arch].items() if v is not None}


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
