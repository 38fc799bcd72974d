"""DuckDB allows one writer process: warehouse writers wait for the lock instead of failing (two real processes)."""

import subprocess
import sys
from pathlib import Path

import duckdb

from pipelines import lake
from pipelines.engine import FinetuneResult, Recipe
from pipelines.engine.records import run_relpath, run_row
from pipelines.warehouse.load import load_tables

ROOT = Path(__file__).resolve().parent.parent
HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("create or replace table held as select 1 as x")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""
LOAD = "import sys; from pipelines.warehouse.load import load_tables; print(load_tables(sys.argv[1], sys.argv[2]))"


def small_lake(url: str) -> None:
    recipe = Recipe()
    for seed in (0, 1):
        result = FinetuneResult(status="ok", dataset_id="tweets_sentiment", metric="accuracy", seed=seed, score=60.0 + seed)
        lake.write(url, "finetune_runs", run_relpath("m/a", "tweets_sentiment", recipe, seed),
                   [run_row("m/a", "all-MiniLM-L6-v2", recipe, result)])


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_a_load_waits_for_another_process_holding_the_write_lock(tmp_path):
    url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    small_lake(url)
    holder = python(HOLD_LOCK, str(db), "3")
    assert holder.stdout.readline().strip() == "locked"
    try:
        duckdb.connect(str(db)).close()
        raise AssertionError("a second process could open the warehouse for writing: the test holds no lock")
    except duckdb.IOException as exc:
        assert "lock" in str(exc).lower()
    counts = load_tables(url, db)  # waits for the holder instead of failing
    assert holder.wait(timeout=30) == 0, holder.stderr.read()
    assert counts["finetune_runs"] == 2
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from held").fetchone() == (1,)  # the other writer's work is kept
        assert con.execute("select list(score order by score) from finetune_runs").fetchone() == ([60.0, 61.0],)


def test_two_loads_at_the_same_time_both_succeed(tmp_path):
    url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    small_lake(url)
    loads = [python(LOAD, url, str(db)) for _ in range(2)]
    for proc in loads:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "'finetune_runs': 2" in out
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from finetune_runs").fetchone() == (2,)
