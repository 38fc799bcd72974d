"""Dagster resources: where the lake and the warehouse are. Values come from `startpoint.settings`."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from startpoint.settings import Settings, get_settings
from startpoint.warehouse.load import connect, staged


class LakeResource(dg.ConfigurableResource):
    """The Parquet results lake (any fsspec URL: a local folder, s3://bucket/prefix, ...)."""

    url: str


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. Readers use `connect(read_only=True)`; writers never open the live file: they
    write a staging copy (`staged`, startpoint/warehouse/load.py) that replaces it atomically, and run in the
    `duckdb` pool (limit 1)."""

    path: str

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        return connect(Path(self.path), read_only=read_only)

    def staged(self, log=None, **kwargs):
        """Context manager yielding the staging file of one writer step (see `startpoint.warehouse.load.staged`)."""
        return staged(self.path, log=log, **kwargs)


class HomeResource(dg.ConfigurableResource):
    """$STARTPOINT_HOME: models, caches and artifacts written by the engine. Its folders are those of
    `startpoint.settings.Settings` for this home, so a path is resolved in one place for the CLI and Dagster."""

    path: str

    @property
    def settings(self) -> Settings:
        return get_settings(self.path)

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir


def default_resources() -> dict[str, object]:
    """Every resource from one `get_settings()`: the lake, the warehouse and the home agree."""
    from assets.dbt import dbt_resource

    settings = get_settings()
    return {
        "lake": LakeResource(url=settings.lake_url),
        "warehouse": WarehouseResource(path=str(settings.warehouse_path)),
        "home": HomeResource(path=str(settings.home)),
        "dbt": dbt_resource(),
    }
