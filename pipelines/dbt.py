"""The dbt project in `sql/` as seen from Dagster: project handle, CLI resource, manifest preparation."""

from __future__ import annotations

import os

from dagster_dbt import DbtCliResource, DbtProject

from pipelines.settings import SQL_DIR, get_settings

# dbt's profile reads STARTPOINT_WAREHOUSE; set it from the same settings Python uses.
os.environ.setdefault("STARTPOINT_WAREHOUSE", str(get_settings().warehouse_path))

dbt_project = DbtProject(project_dir=SQL_DIR, profiles_dir=SQL_DIR)


def ensure_manifest() -> None:
    """Parse the dbt project once when no manifest exists (fresh clone), so every CLI entry point works."""
    if not dbt_project.manifest_path.exists():
        dbt_project.preparer.prepare(dbt_project)


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, profiles_dir=str(SQL_DIR))
