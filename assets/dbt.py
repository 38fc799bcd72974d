"""The dbt project in `sql/` as seen from Dagster: project handle, CLI resource, manifest preparation.

The manifest is prepared the dagster-dbt way: `dagster-dbt project prepare-and-package --file assets/dbt.py`
writes `sql/target/manifest.json` before anything imports the code location (`make manifest`, which `make run`,
`make test` and `make dev` run first, does it when a file under `sql/` is newer than the manifest), and
`dagster dev` re-parses at load (`prepare_if_dev`, with the venv's dbt as every run uses). Outside `dagster dev`,
importing a module never runs dbt.

Each dbt invocation made by Dagster writes its artifacts and log to one folder per home, `$STARTPOINT_HOME/dbt`,
reused by the next run (dbt overwrites its artifacts; the previous dbt.log is removed first), so the folder holds
the latest run only, `sql/target` holds only the manifest, and repeated runs add nothing to the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from startpoint.settings import SQL_DIR, export_env, get_settings

# Nothing here sets STARTPOINT_WAREHOUSE: Dagster's dbt build passes the warehouse as the profile's `warehouse` var
# (assets/sql_models.py), and `run_dbt` gives dbt `export_env()`, which derives it from the same settings.


def _dbt_executable() -> str:
    """The dbt installed beside this interpreter (the venv's), even when the venv is not on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def prepare_if_dev(project: DbtProject) -> None:
    """`dagster dev` only: re-parse the project so edits under sql/ show at reload, with the dbt the runs use.

    `DbtProject.prepare_if_dev()` runs the `dbt` on PATH, which is missing when `dagster dev` is started as
    `.venv/bin/dagster dev` without the venv on PATH, and the code location then fails to load. The project has
    no packages (no `dbt deps`) and no seeds, so a `dbt parse` is the whole preparation."""
    if not project.preparer.using_dagster_dev():
        return
    DbtCliResource(project_dir=project, dbt_executable=_dbt_executable()).cli(
        ["parse", "--quiet"], target_path=project.target_path).wait()


dbt_project = DbtProject(project_dir=SQL_DIR, profiles_dir=SQL_DIR)
prepare_if_dev(dbt_project)


class ManifestMissing(RuntimeError):
    """The prepared manifest is absent: the code location cannot list the dbt models."""


def _sources() -> list[Path]:
    return [p for p in SQL_DIR.rglob("*") if p.suffix in {".sql", ".py", ".yml", ".yaml", ".csv"} and "target" not in p.parts]


def manifest_path() -> Path:
    """The prepared manifest; a missing one is one line naming the command that makes it."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        raise ManifestMissing(
            f"{manifest} is missing: prepare the dbt project with `make manifest` (or "
            "`dagster-dbt project prepare-and-package --file assets/dbt.py`)"
        )
    return manifest


def manifest_is_stale() -> list[Path]:
    """Files under `sql/` newer than the manifest (empty when it is current)."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return _sources()
    built = manifest.stat().st_mtime
    return [p for p in _sources() if p.stat().st_mtime > built]


def run_target_path() -> Path:
    """Where Dagster's dbt invocations write run_results, compiled SQL and dbt.log: one folder per home."""
    return get_settings().home / "dbt"


def run_dbt(*args: str, capture_output: bool = False) -> subprocess.CompletedProcess:
    """Run the venv's dbt on `sql/` outside Dagster (benchmarks), with the shared env. Artifacts and logs go to
    the home's dbt folder unless the caller passes its own `--target-path`."""
    where = [] if "--target-path" in args else ["--target-path", str(run_target_path())]
    return subprocess.run(
        [_dbt_executable(), *args, "--quiet", "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR),
         *where, "--log-path", str(run_target_path())],
        env=export_env(),
        check=True,
        capture_output=capture_output,
    )


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, profiles_dir=str(SQL_DIR), dbt_executable=_dbt_executable())
