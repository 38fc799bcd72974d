"""One source of settings: the Dagster resources resolve their folders through `startpoint.settings`, and importing
the dbt wiring leaves the process environment alone (dbt gets the warehouse as a var or through `export_env`)."""

import json
import os
import subprocess
import sys

from assets.resources import HomeResource, default_resources
from startpoint.settings import REPO_ROOT, get_settings


def test_home_resource_folders_are_the_settings_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("STARTPOINT_HOME", str(tmp_path / "env-home"))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    monkeypatch.chdir(tmp_path)
    home = HomeResource(path="relative-home")  # resolved as STARTPOINT_HOME would be, not left relative
    settings = get_settings(tmp_path / "relative-home")
    assert (home.models_dir, home.cache_dir) == (settings.models_dir, settings.cache_dir)
    assert home.models_dir.is_absolute() and home.settings.lake_url == str(tmp_path / "relative-home" / "lake")
    resources = default_resources()  # the defaults come from the environment's settings, all of them
    assert resources["home"].models_dir == get_settings().models_dir == tmp_path / "env-home" / "models"
    assert resources["warehouse"].path == str(tmp_path / "env-home" / "warehouse.duckdb")
    assert resources["lake"].url == str(tmp_path / "env-home" / "lake")


def test_importing_the_dbt_wiring_does_not_rewrite_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "STARTPOINT_WAREHOUSE"}
    env["STARTPOINT_HOME"] = str(tmp_path)
    code = ("import json, os, assets.dbt, assets.sql_models, pipelines.definitions; "
            "print(json.dumps(os.environ.get('STARTPOINT_WAREHOUSE')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) is None
