"""Every dbt model in `sql/` as a Dagster asset (group `analytics`); dbt tests become asset checks."""


import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.dbt import dbt_project, ensure_manifest
from pipelines.previews import preview_metadata
from pipelines.resources import WarehouseResource
from pipelines.warehouse.load import POOL

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

    Previews are read after dbt has finished: while it runs, dbt holds the warehouse's write lock, and a reader
    would wait for it (DuckDB allows no reader beside another process's writer)."""
    os.environ["STARTPOINT_WAREHOUSE"] = warehouse.path  # dbt's profile reads it: one warehouse for both
    events = list(dbt.cli(["build"], context=context).stream())
    for event in events:
        if isinstance(event, dg.Output):
            key = context.asset_key_for_output(event.output_name)
            extra = preview_metadata(key.to_user_string(), warehouse)
            if extra:
                event = event.with_metadata({**(event.metadata or {}), **extra})
        yield event
