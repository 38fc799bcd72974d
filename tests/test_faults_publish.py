"""Faults of the `published` job as the Dagster UI shows them: a known error of the import or of the warehouse load
is the step failure's description (one line, control characters escaped), not a stack trace; a truncated lake
file fails the `lake_files_valid` check of its table's asset, naming the file; a relationship between two base
tables that breaks is a failed asset check on the tested table's asset. Every input is made by the test."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.published import printable, published_results
from assets.resources import LakeResource, WarehouseResource
from assets.warehouse import LAKE_FILES_CHECK, table_key, warehouse_tables
from startpoint import lake

ESC = "\x1b[31m"  # an ANSI escape sequence: red text on a terminal


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    return home


def _resources(home: Path) -> dict:
    return {"lake": LakeResource(url=str(home / "lake")),
            "warehouse": WarehouseResource(path=str(home / "warehouse.duckdb"))}


def _failure(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    """(description, error message) of the run's one step failure."""
    assert not result.success
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data
    assert data.user_failure_data is not None, data.error.to_string()  # a dg.Failure, not an unexpected exception
    return data.user_failure_data.description, data.error.message


def _runs(n: int, dataset: str = "tweets_sentiment", model: str = "org/model") -> list[dict]:
    return [{"run_id": f"r{i}", "model_id": model, "architecture": "roberta-base", "dataset_id": dataset,
             "seed": i, "score": 50.0 + i, "status": "ok", "origin": "local"} for i in range(n)]


def test_printable_escapes_control_characters_and_keeps_text():
    assert printable(f"a{ESC}b\nc\td é") == "a\\x1b[31mb\\nc\\td é"
    assert printable("plain/path.csv") == "plain/path.csv"


def test_a_bad_published_file_is_the_failure_description_with_escapes_escaped(home, tmp_path, monkeypatch):
    folder = tmp_path / f"results{ESC}x"
    folder.mkdir()
    (folder / f"rob{ESC}erta_table.csv").write_text("")  # an empty table file: PublishedFormatError
    monkeypatch.setenv("STARTPOINT_PUBLISHED_RESULTS", str(folder))
    result = dg.materialize([published_results], resources=_resources(home), raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral())
    description, message = _failure(result)
    assert "\x1b" not in description and "\n" not in description
    assert "results\\x1b[31mx" in description  # the name is there, escaped
    assert description == f"{printable(folder / f'rob{ESC}erta_table.csv')}: file is empty; re-export it from the results"
    assert "\x1b" not in message  # the error line the CLI prints is the same escaped text
    # Nothing of the bad import reached the lake.
    assert not lake.list_files(str(home / "lake"), "finetune_runs")


def test_a_missing_published_folder_is_one_line(home, tmp_path, monkeypatch):
    monkeypatch.setenv("STARTPOINT_PUBLISHED_RESULTS", str(tmp_path / "nowhere"))
    result = dg.materialize([published_results], resources=_resources(home), raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral())
    description, _ = _failure(result)
    assert description == f"{tmp_path / 'nowhere'}: folder not found; set STARTPOINT_PUBLISHED_RESULTS to a " \
                          "results folder"


def test_an_unknown_lake_column_fails_the_load_with_the_file_named(home):
    lake_url = str(home / "lake")
    path = Path(lake_url) / "finetune_runs" / "local" / f"bad{ESC}.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"run_id": "r0", "no_such_column": 1}]), path)
    result = dg.materialize([warehouse_tables], resources=_resources(home), raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral())
    description, _ = _failure(result)
    assert "no_such_column" in description and "bad\\x1b[31m.parquet" in description, description
    assert "\x1b" not in description and "\n" not in description


def test_a_truncated_lake_file_fails_the_tables_check_naming_the_file(home):
    lake_url = str(home / "lake")
    good = lake.write(lake_url, "finetune_runs", "local/good", _runs(2))
    bad = lake.write(lake_url, "finetune_runs", f"local/trunc{ESC}ated", _runs(3, model="org/other"))
    data = Path(bad).read_bytes()
    Path(bad).write_bytes(data[: len(data) // 2])  # truncated: not valid Parquet
    result = dg.materialize([warehouse_tables], resources=_resources(home), raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success  # the other files load
    checks = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    failed = checks[(table_key("finetune_runs"), LAKE_FILES_CHECK)]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert printable(bad) in failed.description and "\x1b" not in failed.description, failed.description
    assert failed.metadata["quarantined_files"].value == 1
    # Every other table's check passes; the good file's rows are in the warehouse.
    assert all(e.passed for (key, _), e in checks.items() if key != table_key("finetune_runs"))
    assert len(checks) == len([k for k in checks if k[1] == LAKE_FILES_CHECK]) >= 5
    assert good and not Path(bad).exists()
    # `startpoint publish` reports it as one line naming the check, the table and the file (exit 1).
    from pipelines.publish import failed_check_lines

    [line] = failed_check_lines(result)
    assert line.startswith(f"check {LAKE_FILES_CHECK} on finetune_runs_table: ") and printable(bad) in line, line


def test_every_relationship_between_two_tables_is_an_asset_check_on_the_tested_table():
    from assets.sql_models import sql_models

    on = {k.name: k.asset_key for k in sql_models.check_keys if "_in_" in k.name and k.name.endswith(
        ("_in_hub_models", "_in_datasets"))}
    assert on == {
        "hub_models_base_model_in_hub_models": table_key("hub_models"),
        "finetune_runs_architecture_model_id_in_hub_models": table_key("finetune_runs"),
        "finetune_runs_dataset_id_in_datasets": table_key("finetune_runs"),
        "finetune_runs_model_id_in_hub_models": table_key("finetune_runs"),
        "probe_scores_architecture_model_id_in_hub_models": table_key("probe_scores"),
        "probe_scores_model_id_in_hub_models": table_key("probe_scores"),
        "probe_scores_proxy_dataset_in_datasets": table_key("probe_scores"),
    }
    specs = {s.key.name: s for s in sql_models.check_specs}
    # The check depends on the other table too (it reads both).
    assert table_key("datasets") in {d.asset_key for d in specs["finetune_runs_dataset_id_in_datasets"].additional_deps}


def test_a_broken_relationship_is_a_failed_asset_check(home):
    """A run whose dataset has no `datasets` row: `finetune_runs_dataset_id_in_datasets` fails as an asset check
    of `finetune_runs_table` (only that dbt test runs)."""
    from assets.dbt import dbt_resource
    from assets.sql_models import sql_models

    lake_url = str(home / "lake")
    lake.write(lake_url, "datasets", "local/sets", [{"dataset_id": "tweets_sentiment"}])
    lake.write(lake_url, "hub_models", "local/models", [{"model_id": "org/model", "architecture": "roberta-base"}])
    lake.write(lake_url, "finetune_runs", "local/runs", _runs(1) + [
        {**_runs(1, dataset="no_such_dataset")[0], "run_id": "orphan"}])
    resources = _resources(home)
    assert dg.materialize([warehouse_tables], resources=resources, instance=dg.DagsterInstance.ephemeral()).success
    check = dg.AssetCheckKey(table_key("finetune_runs"), "finetune_runs_dataset_id_in_datasets")
    result = dg.materialize([warehouse_tables, sql_models], selection=dg.AssetSelection.checks(check),
                            resources={**resources, "dbt": dbt_resource()}, raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral())
    evaluations = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    assert not evaluations[(check.asset_key, check.name)].passed
    observed = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert not observed  # a check result, not an observation


def test_startpoint_publish_ends_with_the_failure_line_and_a_non_zero_exit(tmp_path):
    """`startpoint publish` (what `make run` runs) runs the `published` job; a results folder it cannot read ends
    the output with one line naming the folder (control characters escaped), after the run's logs, exit 1."""
    import os
    import subprocess
    import sys

    folder = tmp_path / f"results{ESC}"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a results table\n")
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    env = {**os.environ, "STARTPOINT_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(dagster_home),
           "STARTPOINT_PUBLISHED_RESULTS": str(folder)}
    env.pop("STARTPOINT_LAKE", None)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "publish"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("lake__published_results: ") and printable(str(folder)) in last, last
    assert "\x1b" not in last and "Traceback" not in done.stderr.strip().splitlines()[-2]
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()  # nothing written
