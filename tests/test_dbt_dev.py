"""`dagster dev` started as `.venv/bin/dagster dev` without the venv on PATH still loads the code location: the dbt
project is re-parsed with the dbt beside the interpreter, the one every run uses (assets/dbt.py)."""

from __future__ import annotations

import shutil

import pytest
from dagster_dbt import DbtProject

from assets.dbt import _dbt_executable, prepare_if_dev
from startpoint.settings import SQL_DIR

BARE_PATH = "/usr/bin:/bin"  # what a desktop launcher or a service gives: no venv


@pytest.fixture
def project(tmp_path, monkeypatch):
    if shutil.which("dbt", path=BARE_PATH):
        pytest.skip(f"a dbt on {BARE_PATH} would hide the lookup this test is about")
    copy = tmp_path / "sql"
    shutil.copytree(SQL_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setenv("PATH", BARE_PATH)
    monkeypatch.setenv("DAGSTER_IS_DEV_CLI", "1")  # what `dagster dev` sets for the code server
    return DbtProject(project_dir=copy, profiles_dir=copy)


def test_the_stock_preparer_needs_dbt_on_path(project):
    """The failure the project's own preparation avoids (if dagster-dbt learns the venv's dbt, drop prepare_if_dev)."""
    with pytest.raises(Exception):
        project.prepare_if_dev()
    assert not project.manifest_path.exists()


def test_prepare_if_dev_parses_with_the_venvs_dbt(project):
    assert _dbt_executable() != "dbt", "the venv's dbt is found beside the interpreter"
    prepare_if_dev(project)
    assert project.manifest_path.is_file()


def test_outside_dagster_dev_nothing_runs(project, monkeypatch):
    monkeypatch.delenv("DAGSTER_IS_DEV_CLI")
    prepare_if_dev(project)
    assert not project.manifest_path.exists()
