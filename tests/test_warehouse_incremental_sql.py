"""The incremental SQL model `finetune_cells` (and so every model after it) gives what a full rebuild gives: after
a load that appended runs (only the new runs' cells re-aggregated), and after loads that replaced or removed runs
(the guard re-aggregates every cell). On a small synthetic lake of benchmarks/warehouse_scale.py."""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from assets.dbt import _dbt_executable
from benchmarks import warehouse_scale
from startpoint import lake
from startpoint.settings import SQL_DIR
from startpoint.warehouse.load import load_tables

BASE_TABLES = {"hub_models", "datasets", "finetune_runs", "probe_scores", "rejected_rows"}
TAMPER = 1000.0  # added to one untouched cell's stored mean: survives only if that cell was not re-aggregated


def dbt_run(db: Path, tmp: Path, *extra: str) -> None:
    env = {**os.environ, "STARTPOINT_WAREHOUSE": str(db)}
    subprocess.run([_dbt_executable(), "run", "--quiet", *extra, "--project-dir", str(SQL_DIR),
                    "--profiles-dir", str(SQL_DIR), "--target-path", str(tmp / "target"),
                    "--log-path", str(tmp / "logs")], env=env, check=True)


def models(db: Path) -> dict[str, list[tuple]]:
    """Every dbt model's rows (sorted), the warehouse's base tables and loader state left out."""
    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' order by 1").fetchall()]
        return {n: con.execute(f'select * from "{n}" order by all').fetchall() for n in names if n not in BASE_TABLES}


def assert_same(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        assert len(got[name]) == len(want[name]), name
        for a, b in zip(got[name], want[name]):
            for x, y in zip(a, b):
                if isinstance(y, float) and isinstance(x, float):
                    assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), \
                        (name, a, b)
                else:
                    assert x == y, (name, a, b)


def full_rebuild(db: Path, tmp: Path) -> dict[str, list[tuple]]:
    """The same warehouse with every model rebuilt from scratch."""
    full = tmp / "full.duckdb"
    shutil.copy(db, full)
    dbt_run(full, tmp, "--full-refresh")
    return models(full)


def tamper_untouched_cell(db: Path) -> tuple[str, str]:
    with duckdb.connect(str(db)) as con:
        model, target = con.execute("select model_id, dataset_id from finetune_cells "
                                    "where model_id like '%-m000001' order by all limit 1").fetchone()
        con.execute("update finetune_cells set score_mean = score_mean + ? where model_id = ? and dataset_id = ?",
                    [TAMPER, model, target])
    return model, target


def stored_mean(db: Path, model: str, target: str) -> float:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select score_mean from finetune_cells where model_id = ? and dataset_id = ?",
                           [model, target]).fetchone()[0]


def true_mean(db: Path, model: str, target: str) -> float:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select avg(score) from finetune_runs where model_id = ? and dataset_id = ? "
                           "and status = 'ok' and score is not null", [model, target]).fetchone()[0]


def extra_run(url: str, run_id: str, score: float, stamp: str) -> Path:
    """One more run of a cell that already exists (a sixth seed of m000001 on target_00), as its own lake file."""
    arch = warehouse_scale.ARCHITECTURES[0]
    row = {"run_id": run_id, "model_id": f"synthetic/{arch}-m000001", "architecture": arch,
           "dataset_id": "target_00", "seed": 99, "score": score, "status": "ok", "origin": "local",
           "metric": "accuracy"}
    data = lake.conform(lake.TABLES["finetune_runs"], [row], ingested_at=dt.datetime.fromisoformat(stamp))
    return Path(lake.write(url, "finetune_runs", f"local/extra/{run_id}", data))


@pytest.fixture()
def warehouse(tmp_path):
    url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    warehouse_scale.generate(url, 3600, "compacted")  # 20 models, 5 per architecture
    load_tables(url, db)
    dbt_run(db, tmp_path)
    return url, db


def test_appended_runs_refresh_only_their_cells_and_equal_a_full_rebuild(warehouse, tmp_path):
    url, db = warehouse
    model, target = tamper_untouched_cell(db)
    assert warehouse_scale.add_runs(url, n_runs=400, start=500) == 400  # 3 new models of the first architecture
    assert load_tables(url, db).modes["finetune_runs"] == "appended"
    dbt_run(db, tmp_path)
    # the untouched cell kept its stored (tampered) mean: the incremental path did not re-aggregate it
    assert stored_mean(db, model, target) == pytest.approx(true_mean(db, model, target) + TAMPER)
    with duckdb.connect(str(db)) as con:  # undo the tamper; everything else must equal a full rebuild
        con.execute("update finetune_cells set score_mean = score_mean - ? where model_id = ? and dataset_id = ?",
                    [TAMPER, model, target])
        new = con.execute("select count(*) from finetune_cells where model_id like '%-m00050_'").fetchone()[0]
    assert new == 36 + 36 + 8  # 400 runs: two models on every target, the third on 8 targets (5 seeds each)
    dbt_run(db, tmp_path)  # nothing new: the models after finetune_cells are rebuilt from the restored cells
    assert_same(models(db), full_rebuild(db, tmp_path))
    # a new run of an existing cell: that cell is re-aggregated from all its runs
    extra_run(url, "extra-1", 12.5, "2030-01-01T00:00:00+00:00")
    assert load_tables(url, db).modes["finetune_runs"] == "appended"
    dbt_run(db, tmp_path)
    assert stored_mean(db, f"synthetic/{warehouse_scale.ARCHITECTURES[0]}-m000001", "target_00") == pytest.approx(
        true_mean(db, f"synthetic/{warehouse_scale.ARCHITECTURES[0]}-m000001", "target_00"))
    assert_same(models(db), full_rebuild(db, tmp_path))


def test_replaced_or_removed_runs_reaggregate_every_cell(warehouse, tmp_path):
    url, db = warehouse
    extra = extra_run(url, "extra-1", 12.5, "2030-01-01T00:00:00+00:00")
    load_tables(url, db)
    dbt_run(db, tmp_path)
    # the same run rescored (its file rewritten): the load rebuilds the table, the guard must notice
    model, target = tamper_untouched_cell(db)
    extra_run(url, "extra-1", 90.0, "2030-01-01T00:00:00+00:00").touch()
    assert load_tables(url, db).modes["finetune_runs"] == "rebuilt"
    dbt_run(db, tmp_path)
    assert stored_mean(db, model, target) == pytest.approx(true_mean(db, model, target))  # tamper gone: all cells
    assert_same(models(db), full_rebuild(db, tmp_path))
    # a run removed: its cell shrinks back, as in a full rebuild
    model, target = tamper_untouched_cell(db)
    extra.unlink()
    assert load_tables(url, db).modes["finetune_runs"] == "rebuilt"
    dbt_run(db, tmp_path)
    assert stored_mean(db, model, target) == pytest.approx(true_mean(db, model, target))
    assert_same(models(db), full_rebuild(db, tmp_path))
