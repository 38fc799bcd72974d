"""One publish, one swap: the `published` job loads the base tables and builds the SQL models on them, and a reader
of the warehouse sees the old file or the new one, never new base tables beside old (or no) models. Every input
is made by the test."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

import assets.sql_models as sql_models_module
from assets.resources import LakeResource, WarehouseResource
from assets.warehouse import warehouse_tables
from startpoint import lake
from startpoint.warehouse.load import load_tables, pending_path, staged


def _runs(ids: range) -> list[dict]:
    return [{"run_id": f"r{i}", "model_id": "org/model", "architecture": "roberta-base",
             "dataset_id": "tweets_sentiment", "seed": i, "score": 50.0 + i, "status": "ok", "origin": "local"}
            for i in ids]


def _seed_lake(lake_url: str, runs: range) -> None:
    lake.write(lake_url, "datasets", "local/sets", [{"dataset_id": "tweets_sentiment"}])
    lake.write(lake_url, "hub_models", "local/models", [{"model_id": "org/model", "architecture": "roberta-base"}])
    lake.write(lake_url, "finetune_runs", f"local/runs-{runs.start}", _runs(runs))


def _count(path: Path, table: str = "finetune_runs") -> int | None:
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"select count(*) from {table}").fetchone()[0]
    finally:
        con.close()


def test_tables_wait_in_the_pending_file_for_the_next_writer_which_publishes_both(tmp_path):
    lake_url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    _seed_lake(lake_url, range(2))
    load_tables(lake_url, db)  # published at once: the default
    assert _count(db) == 2 and not pending_path(db).exists()

    _seed_lake(lake_url, range(2, 5))
    load_tables(lake_url, db, publish=False)
    assert _count(db) == 2, "a reader still sees the old warehouse"
    assert _count(pending_path(db)) == 5

    # A writer that fails (dbt interrupted) publishes nothing and keeps the pending tables for the next one.
    with pytest.raises(RuntimeError), staged(db, require_live=True) as staging:
        duckdb.connect(str(staging)).execute("create table models_half_built as select 1 as x").close()
        raise RuntimeError("interrupted")
    assert _count(db) == 2 and _count(pending_path(db)) == 5

    # The next models writer starts from the pending tables; its swap publishes tables and models together.
    with staged(db, require_live=True) as staging:
        con = duckdb.connect(str(staging))
        con.execute("create table leaderboard as select count(*) as n from finetune_runs")
        con.close()
    assert _count(db) == 5 and _count(db, "leaderboard") == 1 and not pending_path(db).exists()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select n from leaderboard").fetchone()[0] == 5
    con.close()


def test_a_publishing_load_drops_an_older_pending_file(tmp_path):
    lake_url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    _seed_lake(lake_url, range(2))
    load_tables(lake_url, db, publish=False)
    assert _count(db) is None and _count(pending_path(db)) == 2
    _seed_lake(lake_url, range(2, 3))
    load_tables(lake_url, db)
    assert _count(db) == 3 and not pending_path(db).exists()


def test_the_published_job_swaps_tables_and_models_in_once(tmp_path, monkeypatch):
    """While dbt builds, a reader sees the previous warehouse (old tables, old models); a run of the tables alone
    publishes them at once."""
    from assets.dbt import dbt_resource

    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    lake_url, db = str(home / "lake"), home / "warehouse.duckdb"
    resources = {"lake": LakeResource(url=lake_url), "warehouse": WarehouseResource(path=str(db)),
                 "dbt": dbt_resource()}
    _seed_lake(lake_url, range(2))
    assert dg.materialize([warehouse_tables], resources=resources,
                          instance=dg.DagsterInstance.ephemeral()).success
    assert _count(db) == 2 and not pending_path(db).exists()  # alone: published at once

    _seed_lake(lake_url, range(2, 6))
    seen: dict[str, int | None] = {}
    real_staged = sql_models_module.staged

    def observing_staged(path, **kwargs):
        seen["live_runs"] = _count(Path(path))
        seen["pending_runs"] = _count(pending_path(path))
        return real_staged(path, **kwargs)

    monkeypatch.setattr(sql_models_module, "staged", observing_staged)
    dg.materialize([warehouse_tables, sql_models_module.sql_models], resources=resources, raise_on_error=False,
                   instance=dg.DagsterInstance.ephemeral())
    assert seen == {"live_runs": 2, "pending_runs": 6}, seen
    assert _count(db) == 6 and not pending_path(db).exists()
    assert _count(db, "gains") is not None  # the models arrived in the same swap
