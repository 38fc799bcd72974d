"""Writers never open the live warehouse: a load builds a staging copy and swaps it in, so another process's
DuckDB session (read-write or read-only) never makes it wait, and writers wait only for each other (real processes)."""

import logging
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from startpoint import lake
from startpoint.engine import FinetuneResult, Recipe
from startpoint.engine.records import run_relpath, run_row
from startpoint.warehouse.load import load_tables, lock_path, staging_dir

ROOT = Path(__file__).resolve().parent.parent
HOLD_LOCK = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("create or replace table held as select 1 as x")
print("locked", flush=True)
sys.stdin.readline()
print(con.execute("select count(*) from held").fetchone()[0], con.execute("select count(*) from finetune_runs").fetchone()[0], flush=True)
con.close()
"""
HOLD_WRITER_LOCK = """
import fcntl, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""
LOAD = "import sys; from startpoint.warehouse.load import load_tables; print(load_tables(sys.argv[1], sys.argv[2]))"


def small_lake(url: str, seeds=(0, 1)) -> None:
    recipe = Recipe()
    for seed in seeds:
        result = FinetuneResult(status="ok", dataset_id="tweets_sentiment", metric="accuracy", seed=seed, score=60.0 + seed)
        lake.write(url, "finetune_runs", run_relpath("m/a", "tweets_sentiment", recipe, seed),
                   [run_row("m/a", "all-MiniLM-L6-v2", recipe, result)])


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_a_load_does_not_wait_for_another_process_holding_the_duckdb_write_lock(tmp_path, caplog):
    url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    small_lake(url, seeds=(0,))
    load_tables(url, db)
    small_lake(url, seeds=(0, 1))
    holder = python(HOLD_LOCK, str(db))
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        try:
            duckdb.connect(str(db)).close()
            raise AssertionError("a second process could open the warehouse for writing: the test holds no lock")
        except duckdb.IOException as exc:
            assert "lock" in str(exc).lower()
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="startpoint.warehouse"):
            counts = load_tables(url, db)
        assert time.monotonic() - start < 10  # it used to wait up to 120 s, then fail
        assert counts["finetune_runs"] == 2
        # the holder's uncheckpointed log belonged to the replaced file: removed, and said so
        assert not Path(f"{db}.wal").exists()
        assert any("write-ahead log of a read-write session" in r.message for r in caplog.records)
        with duckdb.connect(str(db), read_only=True) as con:  # a new reader: the new file, nothing hand-written
            assert con.execute("select list(score order by score) from finetune_runs").fetchone() == ([60.0, 61.0],)
            assert con.execute("select count(*) from duckdb_tables() where table_name = 'held'").fetchone() == (0,)
        out, err = holder.communicate("\n", timeout=30)
        assert holder.returncode == 0, err
        assert out.split() == ["1", "1"]  # the session keeps its own consistent (old) view, its table included
    finally:
        holder.kill()
    assert not staging_dir(db).exists()


def test_a_load_waits_for_another_writer_and_removes_a_killed_writers_staging_files(tmp_path, caplog):
    url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    small_lake(url)
    leftover = staging_dir(db)
    leftover.mkdir()
    (leftover / "warehouse.duckdb").write_bytes(b"half written")
    (leftover / "warehouse.duckdb.wal").write_bytes(b"x")
    writer = python(HOLD_WRITER_LOCK, str(lock_path(db)), "1.5")
    assert writer.stdout.readline().strip() == "locked"
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="startpoint.warehouse"):
        counts = load_tables(url, db)
    assert time.monotonic() - start >= 1.0  # waited for the other writer
    writer.wait(timeout=10)
    assert counts["finetune_runs"] == 2
    messages = [r.message for r in caplog.records]
    assert any("waiting for another writer" in m for m in messages)
    assert any(str(leftover) in m and "warehouse.duckdb.wal" in m and "killed" in m for m in messages)
    assert not leftover.exists()


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
    assert not staging_dir(db).exists()
