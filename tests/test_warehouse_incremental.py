"""The loader at scale, on small fixtures: DuckDB reads the lake itself, appends only new files, rebuilds a table
whose files changed, and `lake.compact` merges per-run files without losing or doubling a row."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from startpoint import lake
from startpoint.warehouse import load
from startpoint.warehouse.load import load_tables


def run(url: str, run_id: str, score: float, rel: str | None = None, stamp: str | None = None) -> str:
    row = {"run_id": run_id, "model_id": f"m/{run_id}", "architecture": "bert", "dataset_id": "t", "seed": 0,
           "score": score, "status": "ok", "origin": "local"}
    data = lake.conform(lake.TABLES["finetune_runs"], [row],
                        ingested_at=dt.datetime.fromisoformat(stamp) if stamp else None)
    return lake.write(url, "finetune_runs", rel or f"local/{run_id}/t/h-seed0", data)


def rows(db: Path, sql: str = "select run_id, score from finetune_runs order by run_id") -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture()
def paths(tmp_path):
    return str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"


def test_new_files_are_appended_and_the_result_equals_a_full_rebuild(paths, tmp_path):
    url, db = paths
    for i in range(3):
        run(url, f"r{i}", 60.0 + i)
    first = load_tables(url, db)
    assert first.modes["finetune_runs"] == "rebuilt" and first["finetune_runs"] == 3
    run(url, "r3", 70.0)
    second = load_tables(url, db)
    assert second.modes["finetune_runs"] == "appended" and second.modes["datasets"] == "unchanged"
    assert second["finetune_runs"] == 4
    assert load_tables(url, db).modes["finetune_runs"] == "unchanged"
    full = tmp_path / "full.duckdb"
    load_tables(url, full, full=True)
    assert rows(db) == rows(full) == [("r0", 60.0), ("r1", 61.0), ("r2", 62.0), ("r3", 70.0)]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from _lake.loaded_files where table_name = 'finetune_runs'").fetchone() == (4,)


def test_a_changed_or_vanished_file_rebuilds_the_table(paths):
    url, db = paths
    a = run(url, "a", 50.0)
    run(url, "b", 51.0)
    load_tables(url, db)
    run(url, "a", 99.0)  # the same file rewritten: size or stamp changes
    os.utime(a, ns=(1, 1))  # a stamp that cannot equal the remembered one, whatever the clock's resolution
    counts = load_tables(url, db)
    assert counts.modes["finetune_runs"] == "rebuilt" and rows(db) == [("a", 99.0), ("b", 51.0)]
    os.remove(a)
    counts = load_tables(url, db)
    assert counts.modes["finetune_runs"] == "rebuilt" and rows(db) == [("b", 51.0)]


def test_a_new_file_repeating_a_loaded_key_rebuilds_and_the_newest_row_wins(paths):
    url, db = paths
    run(url, "a", 50.0, stamp="2026-01-01T00:00:00+00:00")
    load_tables(url, db)
    run(url, "a", 40.0, rel="local/a/t/older-copy", stamp="2025-01-01T00:00:00+00:00")  # older row, newer file
    counts = load_tables(url, db)
    assert counts.modes["finetune_runs"] == "rebuilt" and rows(db) == [("a", 50.0)]
    run(url, "a", 70.0, rel="local/a/t/newer-copy", stamp="2027-01-01T00:00:00+00:00")
    assert load_tables(url, db).modes["finetune_runs"] == "rebuilt" and rows(db) == [("a", 70.0)]


def test_a_corrupt_new_file_is_quarantined_on_the_incremental_path_too(paths):
    url, db = paths
    run(url, "a", 50.0)
    load_tables(url, db)
    bad = run(url, "b", 51.0)
    Path(bad).write_bytes(Path(bad).read_bytes()[:40])
    counts = load_tables(url, db)
    [q] = counts.quarantined
    assert q.path == bad and "_quarantine" in q.moved_to and not Path(bad).exists()
    assert counts.modes["finetune_runs"] == "appended" and rows(db) == [("a", 50.0)]
    run(url, "b", 52.0)  # rerun of the job that wrote it
    assert load_tables(url, db).modes["finetune_runs"] == "appended" and rows(db) == [("a", 50.0), ("b", 52.0)]


def test_a_corrupt_large_file_read_by_duckdb_is_quarantined_and_named(paths, monkeypatch):
    url, db = paths
    monkeypatch.setattr(load, "SMALL_FILE", 0)  # every file goes through DuckDB's read_parquet
    good = run(url, "a", 50.0)
    bad = run(url, "b", 51.0)
    Path(bad).write_bytes(b"PAR1 not really")
    counts = load_tables(url, db)
    [q] = counts.quarantined
    assert q.path == bad and "magic bytes" in q.reason
    assert lake.list_files(url, "finetune_runs") == [good] and rows(db) == [("a", 50.0)]


def test_older_files_without_newer_columns_load_as_null_and_unknown_columns_are_named(paths, monkeypatch):
    url, db = paths
    folder = Path(url) / "finetune_runs" / "local"
    folder.mkdir(parents=True)
    stamp = pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"run_id": ["old"], "score": [1.5], "ingested_at": stamp}), folder / "old.parquet")
    for small in (1 << 20, 0):  # Arrow's path and DuckDB's
        monkeypatch.setattr(load, "SMALL_FILE", small)
        load_tables(url, db, full=True)
        assert rows(db, "select run_id, score, model_id, device from finetune_runs") == [("old", 1.5, None, None)]
    pq.write_table(pa.table({"run_id": ["x"], "bogus": [1], "ingested_at": stamp}), folder / "x.parquet")
    for small in (1 << 20, 0):
        monkeypatch.setattr(load, "SMALL_FILE", small)
        with pytest.raises(ValueError, match=r"x\.parquet.*unknown column.*bogus"):
            load_tables(url, db, full=True)


def test_compaction_keeps_every_row_once_and_runs_stay_findable(paths):
    url, db = paths
    written = [run(url, f"r{i}", 60.0 + i) for i in range(7)]
    run(url, "x", 1.0, rel="user/x/t/h-seed0")  # another origin is left alone
    load_tables(url, db)
    before = rows(db)
    result = lake.compact(url, "finetune_runs", "local", max_rows=3)
    assert (result.sources, result.rows, len(result.written)) == (7, 7, 3)
    assert not any(Path(p).exists() for p in written)
    files = lake.list_files(url, "finetune_runs")
    assert len(files) == 4 and all("/_compacted/" in f for f in files if "/local/" in f)
    assert lake.read(url, "finetune_runs").num_rows == 8  # no row twice in the lake itself
    counts = load_tables(url, db)
    assert counts.modes["finetune_runs"] == "rebuilt" and rows(db) == before
    # the engine's skip-on-rerun and status lookups still see a merged run
    assert lake.exists(url, "finetune_runs", "local/r3/t/h-seed0")
    assert not lake.exists(url, "finetune_runs", "local/r3/t/h-seed1")
    assert lake.read(url, "finetune_runs", "local/r3/t").column("run_id").to_pylist() == ["r3"]
    assert lake.read(url, "finetune_runs", "local/r3/t/h-seed0.parquet").num_rows == 1
    assert lake.compact(url, "finetune_runs", "local").sources == 0  # nothing left to merge


def test_a_compaction_interrupted_before_removing_its_sources_doubles_no_row(paths, monkeypatch):
    url, db = paths
    for i in range(4):
        run(url, f"r{i}", 60.0 + i)
    monkeypatch.setattr(lake.fsspec.implementations.local.LocalFileSystem, "rm",
                        lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        lake.compact(url, "finetune_runs", "local")
    monkeypatch.undo()
    assert lake.read(url, "finetune_runs").num_rows == 8  # the compacted copy and every source
    counts = load_tables(url, db)
    assert counts["finetune_runs"] == 4 and rows(db) == [(f"r{i}", 60.0 + i) for i in range(4)]
    assert lake.compact(url, "finetune_runs", "local").sources == 4  # the next compaction finishes the job
    assert load_tables(url, db)["finetune_runs"] == 4


def test_compaction_leaves_a_corrupt_source_for_the_load_to_quarantine(paths):
    url, db = paths
    run(url, "a", 50.0)
    run(url, "b", 51.0)
    bad = run(url, "c", 52.0)
    Path(bad).write_bytes(b"garbage")
    result = lake.compact(url, "finetune_runs", "local")
    assert result.skipped == [bad] and result.sources == 2 and Path(bad).exists()
    counts = load_tables(url, db)
    assert [q.path for q in counts.quarantined] == [bad] and rows(db) == [("a", 50.0), ("b", 51.0)]


def test_compact_refuses_a_path_as_origin(paths):
    url, _ = paths
    with pytest.raises(ValueError, match="one folder name"):
        lake.compact(url, "finetune_runs", "local/m")


def test_a_spill_folder_is_set_inside_the_staging_folder(paths, monkeypatch):
    """The load's DuckDB spills to the staging folder (removed with it) under the configured memory limit."""
    url, db = paths
    run(url, "a", 1.0)
    seen = {}
    real = load._configure

    def spy(con, path, lake_url):
        real(con, path, lake_url)
        seen.update(con.execute("select name, value from duckdb_settings() where name in "
                                "('temp_directory', 'memory_limit')").fetchall())

    monkeypatch.setattr(load, "_configure", spy)
    monkeypatch.setenv(load.MEMORY_ENV, "300MB")
    load_tables(url, db)
    assert seen["temp_directory"].startswith(str(load.staging_dir(db)))
    assert seen["memory_limit"] in ("286.1 MiB", "300.0 MB")


def test_a_remote_fsspec_lake_is_read_by_duckdb_through_the_registered_filesystem(tmp_path, monkeypatch):
    """A non-local lake (fsspec's memory filesystem here, s3fs on a cluster): DuckDB reads its files through
    the registered filesystem, and incremental loads work the same."""
    url, db = f"memory://whscale-{os.getpid()}-{tmp_path.name}", tmp_path / "warehouse.duckdb"
    monkeypatch.setattr(load, "SMALL_FILE", 0)
    run(url, "a", 1.0)
    assert load_tables(url, db)["finetune_runs"] == 1
    run(url, "b", 2.0)
    counts = load_tables(url, db)
    assert counts.modes["finetune_runs"] == "appended" and rows(db) == [("a", 1.0), ("b", 2.0)]


def test_tables_past_the_sort_limit_hold_the_same_rows_unsorted(paths, tmp_path, monkeypatch):
    url, db = paths
    for i in (3, 1, 2, 0):
        run(url, f"r{i}", 60.0 + i)
    run(url, "r1", 99.0, rel="local/r1/t/newer", stamp="2030-01-01T00:00:00+00:00")
    load_tables(url, db)
    monkeypatch.setattr(load, "SORT_ROWS", 0)
    unsorted = tmp_path / "unsorted.duckdb"
    load_tables(url, unsorted)
    assert rows(unsorted) == rows(db) == [("r0", 60.0), ("r1", 99.0), ("r2", 62.0), ("r3", 63.0)]
    assert rows(db, "select run_id from finetune_runs") == [("r0",), ("r1",), ("r2",), ("r3",)]  # sorted by key
