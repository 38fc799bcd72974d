"""The dbt project in `sql/` as seen from Dagster: project handle, CLI resource, manifest preparation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from pipelines.settings import SQL_DIR, export_env, get_settings

# dbt's profile reads STARTPOINT_WAREHOUSE; set it from the same settings Python uses.
os.environ.setdefault("STARTPOINT_WAREHOUSE", str(get_settings().warehouse_path))

dbt_project = DbtProject(project_dir=SQL_DIR, profiles_dir=SQL_DIR)


def ensure_manifest() -> None:
    """Run `dbt parse` when the manifest is missing (fresh clone) or older than a SQL/YAML file, so every entry
    point (`dagster dev`, `dagster job execute`, tests) sees the current models."""
    manifest = dbt_project.manifest_path
    sources = [p for p in SQL_DIR.rglob("*") if p.suffix in {".sql", ".yml", ".yaml", ".csv"} and "target" not in p.parts]
    if manifest.exists() and all(p.stat().st_mtime <= manifest.stat().st_mtime for p in sources):
        return
    run_dbt("parse")


def run_dbt(*args: str, capture_output: bool = False) -> subprocess.CompletedProcess:
    """Run the venv's dbt on `sql/` outside Dagster (manifest parsing, benchmarks), with the shared env."""
    return subprocess.run(
        [_dbt_executable(), *args, "--quiet", "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR)],
        env=export_env(),
        check=True,
        capture_output=capture_output,
    )


def _dbt_executable() -> str:
    """The dbt installed beside this interpreter (the venv's), even when the venv is not on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, profiles_dir=str(SQL_DIR), dbt_executable=_dbt_executable())
