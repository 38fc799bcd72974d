"""Every dbt model in `sql/` as a Dagster asset (group `analytics`); dbt tests become asset checks."""


import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.dbt import dbt_project, ensure_manifest
from pipelines.previews import preview_metadata
from pipelines.resources import WarehouseResource
from pipelines.warehouse.load import POOL, staged

ensure_manifest()


class _Translator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "analytics"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=_Translator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    pool=POOL,
)
def sql_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """`dbt build` the selected models; leaderboard-like tables get a markdown preview in their metadata.

    dbt writes a staging copy of the warehouse (`STARTPOINT_WAREHOUSE` points at it while dbt runs), which
    replaces the live file when dbt has finished, so readers never wait for dbt nor block it, and never see a
    half-built set of models. A dbt run that finishes with failed nodes is swapped in too (its successful models
    are new, the failed ones keep their previous version, as with dbt in place); an interrupted one is not.
    Previews are read from the staging file before the swap: no user session on the live file can delay them."""
    with staged(warehouse.path, log=context.log, require_live=True) as staging:
        os.environ["STARTPOINT_WAREHOUSE"] = str(staging)  # dbt's profile reads it
        try:
            invocation = dbt.cli(["build"], context=context, raise_on_error=False)
            events = list(invocation.stream())
        finally:
            os.environ["STARTPOINT_WAREHOUSE"] = warehouse.path
        built = WarehouseResource(path=str(staging))
        for i, event in enumerate(events):
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                extra = preview_metadata(key.to_user_string(), built)
                if extra:
                    events[i] = event.with_metadata({**(event.metadata or {}), **extra})
    yield from events
    error = invocation.get_error()
    if error is not None:
        raise error
